"""Which bands of a raster scene a model reads, by name wherever the file or the user names them.

A scene's band names come from its band descriptions when they name Sentinel-2 bands (``B02``, ``B8A``,
``B4``), else from ``data.maps.raster_bands`` given as the file's band names in order. Nothing is guessed
from the band count: a 13-band stack may be in EuroSAT MS's storage order (B8A last) or in ESA's (B8A
ninth). An RGB model reads B04, B03, B02 by name; else the band numbers ``data.maps.raster_bands`` gives; else
a 3- or 4-band file as RGB(N) and a 1-band file as grey.
"""

import re
from pathlib import Path
from typing import Literal

from jsonargparse.typing import PositiveInt

from eurosat_finetune.data.bands import EUROSAT_MS_BANDS, RGB_BANDS, true_colour_channels
from eurosat_finetune.errors import BandError

SENTINEL2_BAND = re.compile(r"B(\d{1,2}|8A)")
Sentinel2Band = Literal["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A"]
RgbBandNumbers = tuple[PositiveInt, PositiveInt, PositiveInt]
SceneBands = list[Sentinel2Band] | RgbBandNumbers | None
"""``data.maps.raster_bands``: every band of a raster in file order, by name; or, for an RGB model, the red,
green and blue band numbers (from 1); None: by the bands' descriptions."""


def sentinel2_name(description: str | None) -> str | None:
    """The Sentinel-2 band a description names (``B4``, ``B04``, ``b8a``, ``B02 (blue)``), else None."""
    token = re.split(r"[\s,:;(]", (description or "").strip(), maxsplit=1)[0].upper()
    match = SENTINEL2_BAND.fullmatch(token)
    if match is None:
        return None
    name = "B8A" if match.group(1) == "8A" else f"B{int(match.group(1)):02d}"
    return name if name in EUROSAT_MS_BANDS else None


def named_bands(path: Path, descriptions: tuple[str | None, ...], scene_bands: SceneBands) -> list[str] | None:
    """The Sentinel-2 names of a file's bands in file order, if its descriptions or ``data.maps.raster_bands`` say;
    a list of names of another length than the file's bands is refused, not passed over."""
    named = [sentinel2_name(description) for description in descriptions]
    if all(named) and len(set(named)) == len(named):
        return named  # type: ignore[return-value]
    if scene_bands and all(isinstance(band, str) for band in scene_bands):
        if len(scene_bands) != len(descriptions):
            raise BandError(
                f"data.maps.raster_bands names {len(scene_bands)} band(s) but {path} has {len(descriptions)}: "
                "name every band of the file, in file order"
            )
        return [str(band) for band in scene_bands]
    return None


def multispectral_bands(
    path: Path, descriptions: tuple[str | None, ...], trained: list[str], scene_bands: SceneBands
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The band numbers (from 1) to read for a model ``trained`` on those bands, in its channel order;
    and the three shown as true colour in the preview (B04, B03, B02, else the first read, as grey)."""
    names = named_bands(path, descriptions, scene_bands)
    count, needs = len(descriptions), f"the model reads {len(trained)} band(s), {', '.join(trained)}"
    if names is None and count < len(trained):
        raise BandError(f"{path} has {count} band(s); {needs}: map scenes that hold all of them")
    if names is None:
        if count == len(EUROSAT_MS_BANDS):  # a whole stack: in one of the two orders users meet
            example = (
                f"e.g. [{','.join(EUROSAT_MS_BANDS)}] (EuroSAT MS's order) or "
                f"[{','.join(sorted(EUROSAT_MS_BANDS, key=_esa_order))}] (ESA's)"
            )
        else:
            example = f"a list of {count} names such as B02, B03, B04, B08"
        raise BandError(
            f"{path} has {count} band(s) whose descriptions name no Sentinel-2 bands; {needs}: name the file's "
            f"bands in file order with data.maps.raster_bands, {example}"
        )
    missing = [band for band in trained if band not in names]
    if missing:
        raise BandError(
            f"{path} has no band {', '.join(missing)} (its bands: {', '.join(names)}); the model was trained on "
            f"{', '.join(trained)}: map scenes that hold all of them"
        )
    read = tuple(names.index(band) + 1 for band in trained)
    return read, tuple(channel + 1 for channel in true_colour_channels(names, fallback=read[0] - 1))


def rgb_bands(path: Path, descriptions: tuple[str | None, ...], scene_bands: SceneBands) -> tuple[int, ...]:
    """The red, green and blue band numbers (from 1) an RGB model reads of the file ``path``."""
    count = len(descriptions)
    if scene_bands and all(isinstance(band, int) for band in scene_bands):
        if max(scene_bands) > count:  # type: ignore[type-var]
            raise BandError(
                f"{path} has {count} band(s); data.maps.raster_bands={list(scene_bands)} asks for band "
                f"{max(scene_bands)}. Give the red, green and blue bands' numbers (from 1), e.g. "
                "--data.maps.raster_bands [4,3,2] for Sentinel-2 order"
            )
        return tuple(int(band) for band in scene_bands)
    names = named_bands(path, descriptions, scene_bands)
    if names is not None and all(band in names for band in RGB_BANDS):
        return tuple(names.index(band) + 1 for band in RGB_BANDS)
    if names is None and count in (3, 4):
        return (1, 2, 3)  # RGB, or RGB and near infrared
    if count == 1:
        return (1, 1, 1)  # grey
    described = f" ({', '.join(names)})" if names else ", none described as a Sentinel-2 band"
    raise BandError(
        f"{path} has {count} band(s){described}: give its red, green and blue bands' numbers (from 1) with "
        f"data.maps.raster_bands, e.g. --data.maps.raster_bands [4,3,2], or name all {count} in file order"
    )


def _esa_order(band: str) -> float:
    return 8.5 if band == "B8A" else int(band[1:])
