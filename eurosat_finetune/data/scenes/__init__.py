"""Scenes to map: Sentinel-2 products and georeferenced rasters read as the model was trained, cut into windows."""
