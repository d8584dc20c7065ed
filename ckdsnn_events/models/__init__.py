"""Models: ANN teachers and Norse LIF students, built from names like torchvision constructors."""
