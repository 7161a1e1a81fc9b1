"""The ground resolution a model was trained at, so that scenes of another pixel size can be resampled to it."""

import warnings
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

EUROSAT_RESOLUTION = 10.0  # metres per pixel: EuroSAT's patches are Sentinel-2 bands at (or upsampled to) 10 m


def ground_resolution(files: list[Path], is_eurosat: bool) -> float | None:
    """Metres per pixel of the training images: from their georeferencing (a projected CRS), else 10 for
    EuroSAT (its RGB JPEGs carry none), else None (unknown)."""
    if files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(files[0]) as source:
                    if source.crs is not None and source.crs.is_projected:
                        return abs(source.transform.a)
        except RasterioIOError:
            pass
    return EUROSAT_RESOLUTION if is_eurosat else None
