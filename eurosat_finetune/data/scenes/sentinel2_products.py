"""Sentinel-2 products as ESA ships them: a ``.SAFE`` folder, or a ``.zip`` holding one, is one scene.

Read here: the product's level (L1C or L2A), its processing baseline, the quantification value and
per-band add-offsets of its metadata (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``), and its band files,
each band at its finest resolution (product specification 14 and later, since 2016):

- L1C: ``GRANULE/<id>/IMG_DATA/T32UMU_20230615T103031_B8A.jp2``, 13 bands, resolution by band;
- L2A: ``GRANULE/<id>/IMG_DATA/R20m/T32UMU_20230615T103031_B8A_20m.jp2``, resolution in the name;
  no B10; the scene classification ``SCL`` at 20 m.

Band files are opened by GDAL path, so a zip is read where it lies (``/vsizip/``), never extracted.
"""

import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path

from eurosat_finetune.data.bands import ESA_BANDS, NATIVE_RESOLUTION
from eurosat_finetune.errors import UnreadableImageError

METADATA = {"L1C": "MTD_MSIL1C.xml", "L2A": "MTD_MSIL2A.xml"}
PRODUCT_NAME = re.compile(r"S2[A-D]_MSIL(1C|2A)_", re.IGNORECASE)
# the image files: IMG_DATA/<tile>_<sensing>_<band>[_<res>m].jp2 (L2A adds R10m/R20m/R60m folders)
IMAGE_FILE = re.compile(r"GRANULE/[^/]+/IMG_DATA/(?:R(10|20|60)m/)?[^/]+_(B\d\d|B8A|SCL)(?:_(10|20|60)m)?\.jp2$")


@dataclass(frozen=True)
class Sentinel2Product:
    """What a product holds and how its digital numbers become reflectance x 10,000 (EuroSAT MS units)."""

    path: Path | str  # the .SAFE folder or the .zip (a STAC item: its URL or file)
    name: str  # the product's name, without .SAFE or .zip
    level: str  # "L1C" or "L2A"
    baseline: str  # PROCESSING_BASELINE, e.g. "05.09"
    quantification: float  # DN per unit of reflectance (10,000)
    offsets: dict[str, int]  # per band, added to DN before dividing by the quantification (0 before baseline 04.00)
    nodata: int  # the DN that means no data (Special_Values NODATA: 0)
    band_files: dict[str, tuple[str, int]]  # band -> (GDAL path of its file, metres per pixel), the finest
    scl_file: str | None  # L2A's scene classification at its finest, else None

    def to_eurosat_units(self, band: str) -> tuple[float, float]:
        """``(scale, shift)`` with ``DN * scale + shift`` = reflectance x 10,000 of ``band``."""
        scale = 10_000 / self.quantification
        return scale, self.offsets.get(band, 0) * scale


def is_product(path: Path) -> bool:
    """Whether ``path`` is (or claims to be) a Sentinel-2 product: a ``.SAFE`` folder, a ``.zip`` whose
    entries hold a ``.SAFE``'s metadata, or a ``.zip`` named as products are (``S2B_MSIL2A_....zip``).
    A damaged one is then refused by :func:`read_product`, never searched file by file."""
    if path.suffix.upper() == ".SAFE" and path.is_dir():
        return True
    if path.suffix.lower() != ".zip" or not path.is_file():
        return False
    if PRODUCT_NAME.match(path.name):
        return True
    try:
        with zipfile.ZipFile(path) as archive:
            return any(_metadata_entry(name) for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _metadata_entry(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and parts[0].upper().endswith(".SAFE") and parts[1] in METADATA.values()


def product_stem(path: Path) -> str:
    """The file name of a product less ``.SAFE`` and ``.zip``: ``<that>`` for ``<that>.SAFE``, ``<that>.zip``
    or ``<that>.SAFE.zip``; a product's map is named so. (Its own name, ``S2A_MSIL2A_..._T32UMU_...``, is
    its ``.SAFE``'s: :attr:`Sentinel2Product.name`, whatever its zip is called.)"""
    return re.sub(r"(\.SAFE)?(\.zip)?$", "", path.name, flags=re.IGNORECASE)


def read_product(path: Path) -> Sentinel2Product:
    """The product at ``path`` (see :func:`is_product`); a product whose metadata is missing or cannot
    be read is a one-line error naming it."""
    try:
        entries, safe, gdal_prefix = _entries(path)
    except (zipfile.BadZipFile, OSError, StopIteration) as err:
        why = err if not isinstance(err, StopIteration) else "no .SAFE folder with MTD_MSIL1C.xml or MTD_MSIL2A.xml"
        raise UnreadableImageError(f"cannot read the Sentinel-2 product {path} ({why}); download it again") from None
    levels = [level for level, name in METADATA.items() if f"{safe}/{name}" in entries]
    if not levels:
        raise UnreadableImageError(f"{path} holds no MTD_MSIL1C.xml or MTD_MSIL2A.xml; download the product again")
    level = levels[0]
    try:
        metadata = ET.fromstring(_read_entry(path, f"{safe}/{METADATA[level]}"))
    except (ET.ParseError, OSError, KeyError) as err:
        raise UnreadableImageError(f"cannot read {METADATA[level]} of {path} ({err}); download it again") from None
    values = {_local(element.tag): (element.text or "").strip() for element in metadata.iter()}
    quantification, offsets = metadata_radiometry(metadata, level, f"{METADATA[level]} of {path}")
    files: dict[str, tuple[str, int]] = {}
    scl: tuple[str, int] | None = None
    for entry in sorted(entries):
        match = IMAGE_FILE.search(entry)
        if match is None or not entry.startswith(f"{safe}/"):
            continue
        band = match.group(2)
        resolution = int(match.group(1) or match.group(3) or NATIVE_RESOLUTION.get(band, 20))
        found = (gdal_prefix + entry, resolution)
        if band == "SCL":
            scl = found if scl is None or resolution < scl[1] else scl
        elif band in NATIVE_RESOLUTION and (band not in files or resolution < files[band][1]):
            files[band] = found  # each band at its finest resolution
    if not files:
        raise UnreadableImageError(f"{path} holds no band files (GRANULE/*/IMG_DATA/*.jp2); download it again")
    _check_sizes(path, safe, [file for file, _ in [*files.values(), *([scl] if scl else [])]], gdal_prefix)
    return Sentinel2Product(
        path=path,
        name=safe.removesuffix(".SAFE"),  # the product's own name, whatever its zip is called
        level=level,
        baseline=values.get("PROCESSING_BASELINE", "unknown"),
        quantification=quantification,
        offsets=offsets,
        nodata=_nodata(metadata),
        band_files=files,
        scl_file=scl[0] if scl is not None else None,
    )


def metadata_radiometry(metadata: ET.Element, level: str, where: str) -> tuple[float, dict[str, int]]:
    """The quantification value and per-band add-offsets (by band name) of a product's metadata
    (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``, read from a product or a catalogue's ``product-metadata``);
    ``where`` names it in the one-line errors."""
    values = {_local(element.tag): (element.text or "").strip() for element in metadata.iter()}
    quantification = values.get("QUANTIFICATION_VALUE" if level == "L1C" else "BOA_QUANTIFICATION_VALUE")
    if not quantification:
        raise UnreadableImageError(f"{where} has no quantification value; download it again")
    offset_tag = "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"
    try:
        offsets = {  # band_id counts the bands in ESA's order; no list (baselines before 04.00): no offset
            ESA_BANDS[int(element.get("band_id", ""))]: int(float(element.text or 0))
            for element in metadata.iter()
            if _local(element.tag) == offset_tag
        }
    except (ValueError, IndexError):
        raise UnreadableImageError(f"{offset_tag} in {where} has no valid band_id") from None
    return float(quantification), offsets


def _entries(path: Path) -> tuple[set[str], str, str]:
    """The product's file names relative to the folder that holds the ``.SAFE``, the ``.SAFE``'s name,
    and the prefix that makes an entry a GDAL path."""
    if path.is_dir():
        entries = {p.relative_to(path.parent).as_posix() for p in path.rglob("*") if p.is_file()}
        return entries, path.name, f"{path.parent.resolve()}/"
    with zipfile.ZipFile(path) as archive:
        entries = set(archive.namelist())
    safe = next(name.split("/")[0] for name in sorted(entries) if _metadata_entry(name))
    return entries, safe, f"/vsizip/{path.resolve()}/"


def _read_entry(path: Path, entry: str) -> bytes:
    if path.is_dir():
        return (path.parent / entry).read_bytes()
    with zipfile.ZipFile(path) as archive:
        return archive.read(entry)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _nodata(metadata: ET.Element) -> int:
    """``Special_Values`` NODATA's index (0 in every product so far)."""
    for special in metadata.iter():
        if _local(special.tag) == "Special_Values":
            fields = {_local(child.tag): (child.text or "").strip() for child in special}
            if fields.get("SPECIAL_VALUE_TEXT") == "NODATA":
                return int(fields.get("SPECIAL_VALUE_INDEX", 0))
    return 0


def _check_sizes(path: Path, safe: str, gdal_paths: list[str], gdal_prefix: str) -> None:
    """Refuse band files whose size is not the one ``manifest.safe`` lists (a download cut short): a
    damaged JPEG 2000 tile may decode to zeros with no error, and a wrong map."""
    try:
        manifest = ET.fromstring(_read_entry(path, f"{safe}/manifest.safe"))
    except (ET.ParseError, OSError, KeyError):
        return  # no manifest to check against
    listed = {}
    for stream in manifest.iter():
        location = next((child for child in stream if _local(child.tag) == "fileLocation"), None)
        if _local(stream.tag) == "byteStream" and location is not None and stream.get("size"):
            listed[f"{safe}/{location.get('href', '').removeprefix('./')}"] = int(stream.get("size", 0))
    for gdal_path in gdal_paths:
        entry = gdal_path.removeprefix(gdal_prefix)
        if entry in listed and (actual := _size(path, entry)) != listed[entry]:
            raise UnreadableImageError(
                f"{entry} in {path} is {actual} bytes, but the product's manifest.safe says {listed[entry]}; "
                "download the product again"
            )


def _size(path: Path, entry: str) -> int:
    if path.is_dir():
        return (path.parent / entry).stat().st_size
    with zipfile.ZipFile(path) as archive:
        return archive.getinfo(entry).file_size
