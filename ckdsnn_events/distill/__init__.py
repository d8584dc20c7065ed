"""Distillation: saliency maps (teacher CAM, student SAM), losses (CE, KD, feature KD, SAMD, NLD), trainer."""
