"""Store, checkpoint and recipe fuzz targets (registered into targets.TARGETS)."""
