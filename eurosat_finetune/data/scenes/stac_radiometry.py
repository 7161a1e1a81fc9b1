"""The radiometric offset of a STAC item's pixels: decided from what its catalogue publishes, checked against
the pixels, which win where the two disagree.

Pixels reach the model as reflectance x 10,000 without offset. Since processing baseline 04.00 products
add 1000 to every DN, but catalogues differ in what their pixels hold and say:

- Earth Search: ``earthsearch:boa_offset_applied`` true means the offset was taken out of the pixels
  already (nothing to apply); false, at baseline 04.00 or later, that the pixels still hold it. The flag
  is wrong for some items, both ways (earth-search#66, #71; cirrus-earth-search#33), and every band
  declares ``raster:bands`` offset -0.1 whatever its pixels hold: that is never used.
- Planetary Computer: no flag; ``s2:processing_baseline`` >= 04.00 means an offset, whose value (and the
  quantification) the ``product-metadata`` asset's ``MTD_MSIL2A.xml`` gives when it can be read.

The check, on the item's NIR band (B08: water is dark there) whatever bands the model reads: with the offset
in them, valid DNs are >= 1000 wherever reflectance >= 0, so dark surfaces (water, shadow: NIR reflectance near
0) pile up around 1000, a little below it too (the offset is there to keep slightly negative reflectance).
Many valid DNs well below 1000 (under 900, 1 % or more) show pixels without the offset; DNs piled on
[1000, 1100) with next to none under 900 show it. A scene with no dark surface shows neither: then the
metadata decides.
"""

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError

from eurosat_finetune.data.bands import NATIVE_RESOLUTION
from eurosat_finetune.data.scenes.sentinel2_products import metadata_radiometry
from eurosat_finetune.data.scenes.stac_assets import BandAsset, band_assets
from eurosat_finetune.data.scenes.stac_items import stac_io
from eurosat_finetune.errors import BandError, UnreadableImageError

if TYPE_CHECKING:
    import pystac

log = logging.getLogger(__name__)

OFFSET = -1000  # added to DN since processing baseline 04.00
QUANTIFICATION = 10_000.0
CHECKED_SIDE = 256  # px a side of the overview the pixels are checked on
NO_OFFSET_SHARE = 0.01  # valid DNs under WELL_BELOW from this share on: the pixels hold no offset
WELL_BELOW = 900  # reflectance -0.01 with the offset: water reaches just under 1000, not this far
FLOOR = (1000, 1100)  # where dark surfaces lie when the pixels hold the offset


@dataclass(frozen=True)
class Radiometry:
    """How an item's DNs become reflectance x 10,000: ``(DN + offsets[band]) * 10,000 / quantification``,
    and how that was decided."""

    offsets: dict[str, int]
    quantification: float
    decided_by: str  # "metadata" or "pixels"
    metadata_said: str
    pixels_showed: str

    @property
    def offset(self) -> int:
        return min(self.offsets.values(), default=0)


def declared(item: "pystac.Item") -> tuple[int, float, dict[str, int], str]:
    """What the item's metadata says: the offset, the quantification, per-band offsets of its product
    metadata (when read) and why, in words."""
    properties = item.properties
    baseline = str(properties.get("s2:processing_baseline", ""))
    flag = properties.get("earthsearch:boa_offset_applied")
    if flag is True:
        return 0, QUANTIFICATION, {}, "earthsearch:boa_offset_applied true: the offset is out of the pixels"
    if not baseline:
        return 0, QUANTIFICATION, {}, "no s2:processing_baseline: no offset"
    if baseline_number(baseline) < 4:
        return 0, QUANTIFICATION, {}, f"processing baseline {baseline} < 04.00: no offset"
    if flag is False:
        return OFFSET, QUANTIFICATION, {}, f"earthsearch:boa_offset_applied false, baseline {baseline}: offset -1000"
    quantification, offsets = product_metadata(item)
    if offsets:
        return min(offsets.values()), quantification, offsets, f"baseline {baseline}, product-metadata's BOA_ADD_OFFSET"
    return OFFSET, quantification, {}, f"processing baseline {baseline} >= 04.00: offset -1000"


def baseline_number(baseline: str) -> float:
    """``"05.10"`` as 5.1 (compared as a number: "3.01" is before 04.00); an unreadable one as the newest."""
    try:
        return float(baseline)
    except ValueError:
        return float("inf")


def product_metadata(item: "pystac.Item") -> tuple[float, dict[str, int]]:
    """BOA_QUANTIFICATION_VALUE and BOA_ADD_OFFSET of the item's ``product-metadata`` (the Planetary
    Computer's MTD_MSIL2A.xml), when there is one and it reads; else 10,000 and none."""
    asset = item.assets.get("product-metadata")
    if asset is None:
        return QUANTIFICATION, {}
    href = asset.get_absolute_href() or asset.href
    try:
        metadata = ET.fromstring(stac_io().read_text(href))
        return metadata_radiometry(metadata, "L2A", f"product-metadata {href} of STAC item {item.id}")
    except Exception as err:  # pystac raises bare Exceptions for HTTP errors; the XML may be damaged
        log.info("STAC item %s: product-metadata not read (%s); the baseline decides", item.id, err)
        return QUANTIFICATION, {}


def checked_band(item: "pystac.Item", assets: dict[str, BandAsset]) -> tuple[str, BandAsset]:
    """The band the pixels are checked on: the item's B08 (NIR: water is dark) whatever the model reads, else
    the finest band read."""
    try:
        return "B08", band_assets(item, ["B08"])["B08"]
    except BandError:
        bands = [band for band in assets if band != "SCL"]
        band = min(bands, key=lambda band: (NATIVE_RESOLUTION[band], band))
        return band, assets[band]


def pixels_offset(dn: np.ndarray) -> tuple[int | None, str]:
    """The offset valid (non-zero) DNs show, or None where they cannot tell; and what they showed, in words."""
    valid = dn[dn > 0]
    if valid.size == 0:
        return None, "no valid pixel"
    below = float((valid < WELL_BELOW).mean())
    floor = float(((valid >= FLOOR[0]) & (valid < FLOOR[1])).mean())
    words = f"{below:.1%} of valid DNs under {WELL_BELOW}, {floor:.1%} in [1000, 1100)"
    if below >= NO_OFFSET_SHARE:
        return 0, f"{words}: no offset"
    if floor >= NO_OFFSET_SHARE and below < floor / 10:  # dark surfaces piled on the 1000 floor
        return OFFSET, f"{words}: the offset"
    return None, f"{words}: no dark surface to tell"


def overview(path: str) -> np.ndarray:
    """The band at ``path`` read at most CHECKED_SIDE px a side (a COG's overview: a few requests)."""
    try:
        with rasterio.open(path) as source:
            scale = max(1, max(source.width, source.height) // CHECKED_SIDE)
            shape = (max(1, source.height // scale), max(1, source.width // scale))
            return source.read(1, out_shape=shape, resampling=Resampling.nearest)
    except RasterioIOError as err:
        raise UnreadableImageError(f"cannot read {path} ({err}); check the URL and that it is public") from None


def decide(item: "pystac.Item", assets: dict[str, BandAsset]) -> Radiometry:
    """The item's offsets (per band read) and quantification: its metadata's, unless its pixels show
    otherwise, which is then said in one warning naming the item."""
    offset, quantification, per_band, said = declared(item)
    band, checked = checked_band(item, assets)
    shown, showed = pixels_offset(overview(checked.gdal_path))
    showed = f"{band}: {showed}"
    if shown is None or shown == offset:
        offsets = {b: per_band.get(b, offset) for b in assets if b != "SCL"}
        return Radiometry(offsets, quantification, "metadata", said, showed)
    log.warning(
        "STAC item %s: its metadata says %s, but its pixels show %s; offset %d applied",
        item.id,
        said,
        showed,
        shown,
    )
    return Radiometry({b: shown for b in assets if b != "SCL"}, quantification, "pixels", said, showed)
