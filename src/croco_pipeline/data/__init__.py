"""Data: readers, the DFC2018 layout, GeoTIFF datasets, alignment, tile stacks, splits and patch indexes."""
