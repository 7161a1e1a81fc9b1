"""Reading multispectral GeoTIFFs (EuroSAT MS: 13 Sentinel-2 bands, uint16) with rasterio.

A dataset folder is multispectral when its first image is a GeoTIFF of 13 bands; then every image must
be one (a file with another band count is named in a one-line error). Pixels stay as stored: uint16
reflectance x 10,000, normalised per band later with statistics in the same units.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioIOError
from torchvision.transforms.v2.functional import resize

from eurosat_finetune.data.bands import EUROSAT_MS_BANDS
from eurosat_finetune.errors import BandError

TIFF_SUFFIXES = frozenset({".tif", ".tiff"})


def band_count(path: Path) -> int | None:
    """How many bands the raster ``path`` holds; None if rasterio cannot open it or it is no TIFF."""
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return None
    try:
        with rasterio.open(path) as source:
            return source.count
    except RasterioIOError:
        return None


def is_multispectral(files: Sequence[Path]) -> bool:
    """Whether a dataset of ``files`` is EuroSAT MS-like: its first image a GeoTIFF of 13 bands."""
    return bool(files) and band_count(files[0]) == len(EUROSAT_MS_BANDS)


def read_bands(path: Path) -> torch.Tensor:
    """All 13 bands of ``path`` as a uint16 ``(13, H, W)`` tensor, as stored; any other band count is an
    error that names the file (a dataset mixes no sensors)."""
    try:
        with rasterio.open(path) as source:
            if source.count != len(EUROSAT_MS_BANDS):
                raise BandError(
                    f"{path} has {source.count} band(s), not the 13 of EuroSAT MS ({', '.join(EUROSAT_MS_BANDS)}); "
                    "remove it, or keep the dataset's images all of one kind"
                )
            pixels = source.read()
    except RasterioIOError as err:
        raise OSError(f"cannot read {path} ({err})") from None
    return torch.from_numpy(pixels.astype(np.uint16, copy=False))


def read_bands_at(path: Path, size: tuple[int, int]) -> tuple[torch.Tensor, bool]:
    """:func:`read_bands`, resized (bilinear, antialiased, in float) to ``size`` if it has another; and
    whether it was."""
    image = read_bands(path)
    if tuple(image.shape[-2:]) == size:
        return image, False
    resized = resize(image.float(), list(size), antialias=True).round().clamp(0, 65535)
    return torch.from_numpy(resized.numpy().astype(np.uint16)), True
