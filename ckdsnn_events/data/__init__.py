"""Data: event and image datasets, the HDF5 frame store, augmentation and batching."""
