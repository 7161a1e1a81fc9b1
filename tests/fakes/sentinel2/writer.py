"""``write_product``: a whole product (image files, then metadata) built in a temporary folder and renamed into
place, as a ``.SAFE`` folder or the ``.zip`` that holds one; the same call writes the same bytes."""

import datetime as dt
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio

from fakes.sentinel2.image_files import ten_metre_grid, write_image_files
from fakes.sentinel2.manifest import manifest_xml
from fakes.sentinel2.naming import ProductNames
from fakes.sentinel2.product_metadata import lat_lon_footprint, user_product_xml
from fakes.sentinel2.specification import QUANTIFICATION
from fakes.sentinel2.tile_metadata import datastrip_xml, tile_xml
from fakes.sentinel2.xml_elements import write_xml


def _write_safe(
    safe: Path,
    names: ProductNames,
    native: dict[str, np.ndarray],
    scl: np.ndarray | None,
    origin: tuple[float, float],
    blocksize: int,
    quantification: int,
) -> None:
    """Every file of the product into the (empty) folder ``safe``."""
    height, width = ten_metre_grid(native)
    granule = safe / "GRANULE" / names.granule
    for folder in (safe / "AUX_DATA", safe / "HTML", safe / "rep_info", granule / "AUX_DATA", granule / "QI_DATA"):
        folder.mkdir(parents=True, exist_ok=True)
    (safe / "DATASTRIP" / names.datastrip_dir / "QI_DATA").mkdir(parents=True)
    image_files, scl_percent = write_image_files(safe, names, native, scl, origin, blocksize)

    footprint = lat_lon_footprint(names, origin, height, width)
    product_xml = user_product_xml(names, image_files, footprint, scl_percent, quantification)
    write_xml(safe / f"MTD_MSI{names.level}.xml", product_xml)
    write_xml(granule / "MTD_TL.xml", tile_xml(names, origin, height, width, scl_percent))
    write_xml(safe / "DATASTRIP" / names.datastrip_dir / "MTD_DS.xml", datastrip_xml(names))
    # last: the manifest lists every other file with its size and checksum
    write_xml(safe / "manifest.safe", manifest_xml(names, safe, footprint))


def _zip_safe(safe: Path, name: str, target: Path, when: dt.datetime) -> None:
    """``safe`` as ``<name>.SAFE/...`` in the zip ``target``: folders as entries, JPEG 2000 stored, the rest
    deflated, sorted, every entry stamped ``when`` (so the same product zips to the same bytes)."""
    stamp = when.timetuple()[:6]
    paths = sorted(safe.rglob("*"), key=lambda p: p.relative_to(safe).as_posix())
    with zipfile.ZipFile(target, "w", allowZip64=True) as archive:
        for path in [safe, *paths]:
            arcname = f"{name}.SAFE/" + (path.relative_to(safe).as_posix() if path != safe else "")
            if path.is_dir():
                info = zipfile.ZipInfo(arcname.rstrip("/") + "/", stamp)
                info.external_attr = (0o40755 << 16) | 0x10
                archive.writestr(info, b"")
                continue
            info = zipfile.ZipInfo(arcname, stamp)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED if path.suffix == ".jp2" else zipfile.ZIP_DEFLATED
            info.file_size = path.stat().st_size
            with path.open("rb") as source, archive.open(info, "w") as sink:  # zip64 from file_size when needed
                shutil.copyfileobj(source, sink, 1 << 22)


def write_product(
    root: Path,
    native: dict[str, np.ndarray],
    level: Literal["L1C", "L2A"] = "L2A",
    baseline: str = "05.09",
    scl: np.ndarray | None = None,
    as_zip: bool = False,
    tile: str = "T32UMU",
    sensing: str = "20230615T103031",
    origin: tuple[float, float] = (499980.0, 5400000.0),
    blocksize: int = 1024,
    quantification: int = QUANTIFICATION,
) -> Path:
    """Write a Sentinel-2 ``level`` product from ``native`` (band -> uint16 DN at the band's native resolution,
    offset included) into ``root``; return its ``.SAFE`` folder, or with ``as_zip`` its ``.zip`` (no folder).

    L1C: every given band in ``IMG_DATA/`` plus TCI. L2A: ``IMG_DATA/R10m|R20m|R60m/`` as ESA lays them out
    (bands resampled by block means, B01 at 20 m by repetition; no B10), TCI, constant AOT and WVP, SCL
    (``scl`` at 20 m, or one from NDVI; 60 m by block mode) and the cloud/snow probability masks. Baselines from
    04.00 list the -1000 offset of every band; the metadata gives ``quantification`` (DN per unit of reflectance:
    10,000 in every product so far), which ``native`` must have been made with. Bands missing from ``native`` are
    not written. JPEG 2000 files are
    lossless, tiled ``blocksize`` (at most the raster). A full 10980 x 10980 L2A product is ~1.4 GB. The product is
    built under a temporary name and renamed, so an interrupted write never leaves one that looks complete;
    an existing product of the same name is replaced."""
    if level not in ("L1C", "L2A"):
        raise ValueError(f"level={level!r}: give 'L1C' or 'L2A'")
    if level == "L2A":
        native = {band: array for band, array in native.items() if band != "B10"}
        if scl is not None:
            height, width = ten_metre_grid(native)
            if scl.dtype != np.uint8 or scl.shape != (height // 2, width // 2) or scl.max(initial=0) > 11:
                raise ValueError(
                    f"write_product: scl must be uint8 classes 0..11 at 20 m, shape {(height // 2, width // 2)}; "
                    f"got {scl.dtype} {scl.shape}"
                )
    elif scl is not None:
        raise ValueError("write_product: scl (scene classification) belongs to L2A products, not L1C")
    if blocksize < 32:
        raise ValueError(f"write_product: blocksize={blocksize} is too small for JPEG 2000 tiles (>= 32)")
    names = ProductNames(level, baseline, tile, sensing)
    ten_metre_grid(native)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{names.product}.SAFE.tmp", dir=root))
    try:
        with rasterio.Env(GDAL_NUM_THREADS=os.environ.get("GDAL_NUM_THREADS", "ALL_CPUS")):  # JPEG 2000 encoding
            _write_safe(staging, names, native, scl, origin, blocksize, quantification)
        if as_zip:
            target = root / f"{names.product}.zip"
            handle, partial = tempfile.mkstemp(prefix=f"{names.product}.zip.tmp", dir=root)
            os.close(handle)
            try:
                _zip_safe(staging, names.product, Path(partial), names.generation)
                os.replace(partial, target)
            finally:
                Path(partial).unlink(missing_ok=True)
            return target
        target = root / f"{names.product}.SAFE"
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{names.product}.SAFE.old", dir=root))
            os.replace(target, old / "product")
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)
