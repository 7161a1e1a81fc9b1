"""Bands by name: the Sentinel-2 bands of EuroSAT, their storage order and their statistics.

EuroSAT MS stores the 13 bands of Sentinel-2 Level-1C (top-of-atmosphere reflectance x 10,000, uint16)
in the order B01, B02, ..., B12 and then B8A last; not in numeric order (TorchGeo issue 2458 fixed this
mistake there). EuroSAT RGB is B04, B03, B02 as 8-bit true colour.
"""

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import DataLoader, Dataset

from eurosat_finetune.errors import BandError

log = logging.getLogger(__name__)

ESA_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
"""Sentinel-2's bands in ESA's order: the metadata's ``band_id`` counts them from 0 in this order."""

NATIVE_RESOLUTION = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B10": 60,
    "B11": 20,
    "B12": 20,
}
"""Metres per pixel each band is measured at (the L1C files' resolution)."""

EUROSAT_MS_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
"""The bands of a EuroSAT MS GeoTIFF, in the order they are stored."""

RGB_BANDS = ("B04", "B03", "B02")
"""Red, green and blue: the bands of EuroSAT RGB, and those a pretrained RGB network's filters belong to."""

# Per-band mean and std of EuroSAT MS (reflectance x 10,000), as TorchGeo publishes them, in storage order
EUROSAT_MS_MEAN = {
    "B01": 1354.41,
    "B02": 1118.24,
    "B03": 1042.93,
    "B04": 947.63,
    "B05": 1199.47,
    "B06": 1999.79,
    "B07": 2369.22,
    "B08": 2296.83,
    "B09": 732.08,
    "B10": 12.11,
    "B11": 1819.01,
    "B12": 1118.92,
    "B8A": 2594.14,
}
EUROSAT_MS_STD = {
    "B01": 245.72,
    "B02": 333.01,
    "B03": 395.09,
    "B04": 593.75,
    "B05": 566.42,
    "B06": 861.18,
    "B07": 1086.63,
    "B08": 1117.98,
    "B09": 404.92,
    "B10": 4.78,
    "B11": 1002.59,
    "B12": 761.30,
    "B8A": 1231.59,
}

BandChoice = list[str] | Literal["all"] | None


def chosen_bands(choice: BandChoice, available: Sequence[str], where: str) -> list[str]:
    """The band names ``choice`` picks from ``available`` (``all`` or null: every band, in stored order);
    an unknown or repeated name is a one-line error that names it and what ``where`` holds."""
    if choice is None or choice == "all":
        return list(available)
    if isinstance(choice, str):
        raise BandError(f"data.bands={choice!r}: give a list of band names, e.g. [B04, B03, B02], or 'all'")
    unknown = [band for band in choice if band not in available]
    if unknown:
        raise BandError(
            f"data.bands names {', '.join(unknown)}, which {where} does not have; its bands are "
            f"{', '.join(available)} (or give 'all')"
        )
    repeated = sorted({band for band in choice if choice.count(band) > 1})
    if repeated or not choice:
        raise BandError(f"data.bands={list(choice)}: name each band once, at least one")
    return list(choice)


def band_statistics(images: Dataset, batch_size: int = 256) -> tuple[list[float], list[float]]:
    """Per-band mean and std over every pixel of ``images`` (``(pixels, label)`` items), in float64."""
    log.info("Computing the per-band statistics of %d training images", len(images))
    total, squares, count = None, None, 0
    for pixels, _ in DataLoader(images, batch_size=batch_size):
        values = pixels.to(torch.float64).transpose(0, 1).reshape(pixels.shape[1], -1)
        total = values.sum(dim=1) + (0 if total is None else total)
        squares = (values**2).sum(dim=1) + (0 if squares is None else squares)
        count += values.shape[1]
    mean = total / count
    std = (squares / count - mean**2).clamp(min=0).sqrt()
    return mean.tolist(), std.clamp(min=1e-6).tolist()  # a constant band must not divide by zero


def published_statistics(names: list[str]) -> tuple[list[float], list[float]]:
    """EuroSAT MS's published per-band mean and std of the bands ``names``."""
    return [EUROSAT_MS_MEAN[band] for band in names], [EUROSAT_MS_STD[band] for band in names]


def trained_bands(choice: BandChoice, multispectral: bool, folder: Path) -> list[str] | None:
    """The bands ``data.bands`` picks from the images in ``folder``; None for RGB images, which are
    trained on as stored (B04, B03, B02)."""
    where = f"the images in {folder}"
    if multispectral:
        return chosen_bands(choice, EUROSAT_MS_BANDS, where)
    if isinstance(choice, list) and choice != list(RGB_BANDS):  # checked first: its names may be no RGB band's
        raise BandError(
            f"data.bands={choice}: {where} are RGB, trained on as stored (B04, B03, B02); a model trained on "
            "these bands (a multispectral checkpoint's, unless the command names others) needs multispectral images"
        )
    chosen_bands(choice, RGB_BANDS, f"{where} (RGB)")  # a string other than 'all' is one line there
    return None


def true_colour_channels(names: Sequence[str], fallback: int = 0) -> list[int]:
    """Which of the bands ``names`` to show as red, green and blue: B04, B03, B02 when all three are
    there, else band ``fallback`` as grey."""
    rgb = [names.index(band) for band in RGB_BANDS if band in names]
    return rgb if len(rgb) == 3 else [fallback] * 3


def stored_indices(names: list[str] | None) -> list[int] | None:
    """Where the bands ``names`` are among the 13 stored in a EuroSAT MS file."""
    return [EUROSAT_MS_BANDS.index(band) for band in names] if names is not None else None
