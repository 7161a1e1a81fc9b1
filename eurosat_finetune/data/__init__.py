"""The data layer: where the images come from (found, downloaded, or a synthetic sample), how they are
listed, decoded once into a cache, split and served, the windows of whole scenes, and the datamodule
over all of it. Imports nothing from ``model``, ``outputs`` or ``cli``."""
