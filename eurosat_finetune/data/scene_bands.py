"""Which bands of a scene a model reads: by number for an RGB model (``data.scene_bands``, red, green,
blue), by name for a multispectral one. A scene's band names come from its band descriptions when
they name Sentinel-2 bands (``B02``, ``B8A``, ``B4``), else from EuroSAT MS's storage order for a
13-band file, else from ``data.scene_bands`` given as the file's band names in order."""

import re
from pathlib import Path

import rasterio

from eurosat_finetune.data.bands import EUROSAT_MS_BANDS, true_colour_channels
from eurosat_finetune.errors import BandError

SENTINEL2_BAND = re.compile(r"B(\d{1,2}|8A)")


def sentinel2_name(description: str | None) -> str | None:
    """The Sentinel-2 band a description names (``B4``, ``B04``, ``b8a``, ``B02 (blue)``), else None."""
    token = re.split(r"[\s,:;(]", (description or "").strip(), maxsplit=1)[0].upper()
    match = SENTINEL2_BAND.fullmatch(token)
    if match is None:
        return None
    name = "B8A" if match.group(1) == "8A" else f"B{int(match.group(1)):02d}"
    return name if name in EUROSAT_MS_BANDS else None


def band_names_of(path: Path, descriptions: tuple[str | None, ...], scene_bands: list[int] | list[str]) -> list[str]:
    """The Sentinel-2 names of the bands of the scene ``path``, in file order."""
    named = [sentinel2_name(description) for description in descriptions]
    if all(named) and len(set(named)) == len(named):
        return named
    if len(descriptions) == len(EUROSAT_MS_BANDS):
        return list(EUROSAT_MS_BANDS)
    if all(isinstance(band, str) for band in scene_bands) and len(scene_bands) == len(descriptions):
        return list(scene_bands)
    raise BandError(
        f"{path} has {len(descriptions)} band(s) whose descriptions name no Sentinel-2 bands; name them in file "
        f"order with data.scene_bands, e.g. --data.scene_bands [B02,B03,B04,B08]"
    )


def multispectral_bands(
    path: Path, trained: list[str], scene_bands: list[int] | list[str]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The band numbers (from 1) to read for a model ``trained`` on those bands, in its channel order;
    and the three shown as true colour in the preview (B04, B03, B02, else the first read, as grey)."""
    with rasterio.open(path) as source:
        names = band_names_of(path, source.descriptions, scene_bands)
    missing = [band for band in trained if band not in names]
    if missing:
        raise BandError(
            f"{path} has no band {', '.join(missing)} (its bands: {', '.join(names)}); the model was trained on "
            f"{', '.join(trained)}: map scenes that hold all of them"
        )
    read = tuple(names.index(band) + 1 for band in trained)
    return read, tuple(channel + 1 for channel in true_colour_channels(names, fallback=read[0] - 1))
