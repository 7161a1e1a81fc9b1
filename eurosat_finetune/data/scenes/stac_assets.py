"""Sentinel-2 bands by name in a STAC item's assets, across catalogues.

Earth Search v1 keys its band assets by common name (``nir08`` is B8A, ``scl`` the scene classification),
the Planetary Computer by band (``B8A``, ``SCL``); other catalogues name the band in the asset's
``eo:bands`` (or STAC 1.1 ``bands``). Never read: a ``-jp2`` copy (Earth Search's JPEG 2000 in a
requester-pays bucket), ``visual`` (8-bit true colour, whose ``eo:bands`` are also named red, green and
blue), anything that is not a GeoTIFF; and a band is never found by common name alone (``rededge`` is
B05, B06 and B07 alike).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from eurosat_finetune.data.bands import ESA_BANDS, NATIVE_RESOLUTION
from eurosat_finetune.errors import BandError

if TYPE_CHECKING:
    import pystac

EARTH_SEARCH_KEYS = {  # Earth Search v1's band assets are keyed by common name
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
}
BANDS = (*ESA_BANDS, "SCL")  # also the Planetary Computer's keys
NEVER = ("visual",)
SCL_RESOLUTION = 20


@dataclass(frozen=True)
class BandAsset:
    """Where a band lies: the asset's key, its GDAL path and its metres per pixel."""

    key: str
    gdal_path: str
    resolution: int


def band_of(key: str, asset: "pystac.Asset") -> str | None:
    """The band (``B01`` ... ``B12``, ``B8A``) or ``SCL`` that the asset ``key`` holds; None for any other asset."""
    if key.endswith("-jp2") or key in NEVER or not (asset.media_type or "").startswith("image/tiff"):
        return None
    if key in EARTH_SEARCH_KEYS or key in BANDS:
        return EARTH_SEARCH_KEYS.get(key, key)
    described = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []
    names = [band.get("name") for band in described]
    if len(names) != 1:  # several bands in one file (a true-colour image): not a band's file
        return None
    name = str(names[0])
    return name if name in BANDS else EARTH_SEARCH_KEYS.get(name)


def gdal_path(href: str) -> str:
    """An asset's absolute href as GDAL opens it: HTTP through ``/vsicurl/`` (range requests), S3 through
    ``/vsis3/``, local files as they are."""
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("s3://"):
        return f"/vsis3/{href.removeprefix('s3://')}"
    return href.removeprefix("file://")


def resolution_of(band: str, asset: "pystac.Asset") -> int:
    """Metres per pixel: the asset's ``proj:transform``, else its ``gsd``, else the band's native one."""
    transform = asset.extra_fields.get("proj:transform")
    gsd = abs(transform[0]) if transform else asset.extra_fields.get("gsd")
    return round(gsd) if gsd else NATIVE_RESOLUTION.get(band, SCL_RESOLUTION)


def band_assets(item: "pystac.Item", bands: list[str]) -> dict[str, BandAsset]:
    """Each of ``bands`` (and ``SCL`` if asked) from its asset in ``item``; a band without one is a one-line
    error naming the band and the item, before any pixel is read."""
    found: dict[str, BandAsset] = {}
    for key, asset in item.assets.items():
        band = band_of(key, asset)
        if band in bands and band not in found:
            found[band] = BandAsset(key, gdal_path(asset.get_absolute_href() or asset.href), resolution_of(band, asset))
    missing = [band for band in bands if band not in found]
    if "SCL" in missing:
        raise BandError(
            f"STAC item {item.id} has no scene classification (SCL) asset, which data.maps.mask_clouds reads "
            f"(assets: {', '.join(item.assets)}); drop data.maps.mask_clouds to map it"
        )
    if missing:
        raise BandError(
            f"STAC item {item.id} has no cloud-optimised GeoTIFF asset of band {', '.join(missing)}, which the model "
            f"reads (assets: {', '.join(item.assets)}); map it with a model trained without it"
        )
    return found
