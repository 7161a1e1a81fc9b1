"""The JPEG 2000 files of a product: its bands (L1C: each at its native resolution; L2A: resampled into R10m,
R20m and R60m), true colour, aerosol and water vapour, scene classification, cloud and snow masks, the preview."""

from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from eurosat_finetune.data.bands import ESA_BANDS, NATIVE_RESOLUTION
from fakes.sentinel2.naming import ProductNames, has_offset
from fakes.sentinel2.resampling import block_mean, block_mode, nearest_upsample
from fakes.sentinel2.specification import (
    AOT_DN,
    BASELINE_OFFSET,
    L2A_LAYOUT,
    SCL_CLASSES,
    WVP_DN,
)


def _true_colour(red: np.ndarray, green: np.ndarray, blue: np.ndarray, offset: int) -> np.ndarray:
    """TCI, (3, H, W) uint8: reflectance 0..0.2 (DN + offset 0..2000, clipped) mapped to 1..255, rounded;
    0 in all three channels where any of the three DN is 0 (no data)."""
    tci = np.empty((3, *red.shape), np.uint8)
    nodata = (red == 0) | (green == 0) | (blue == 0)
    for channel, dn in enumerate((red, green, blue)):
        value = np.clip(dn.astype(np.int32) + offset, 0, 2000)
        value *= 254
        value += 1000
        value //= 2000
        value += 1
        value[nodata] = 0
        tci[channel] = value
    return tci


def _write_jp2(path: Path, data: np.ndarray, res: int, epsg: int, origin: tuple[float, float], blocksize: int) -> None:
    """One lossless, tiled JPEG 2000 file as the ground segment writes them (GDAL's JP2OpenJPEG driver)."""
    pixels = data if data.ndim == 3 else data[None]
    with rasterio.open(
        path,
        "w",
        driver="JP2OpenJPEG",
        width=pixels.shape[2],
        height=pixels.shape[1],
        count=pixels.shape[0],
        dtype=pixels.dtype,
        crs=CRS.from_epsg(epsg),
        transform=from_origin(origin[0], origin[1], res, res),
        REVERSIBLE="YES",
        QUALITY="100",
        BLOCKXSIZE=str(blocksize),
        BLOCKYSIZE=str(blocksize),
    ) as dst:
        dst.write(pixels)


def ten_metre_grid(native: dict[str, np.ndarray]) -> tuple[int, int]:
    """The product's size on the 10 m grid, checked against every band's native resolution."""
    grids = set()
    for band, array in native.items():
        if band not in NATIVE_RESOLUTION:
            raise ValueError(f"write_product: unknown band {band!r}; bands are {', '.join(ESA_BANDS)}")
        if array.dtype != np.uint16 or array.ndim != 2:
            raise ValueError(f"write_product: {band} must be a 2-D uint16 array, got {array.dtype} {array.shape}")
        factor = NATIVE_RESOLUTION[band] // 10
        grids.add((array.shape[0] * factor, array.shape[1] * factor))
    if not grids:
        raise ValueError("write_product: native holds no band to write")
    if len(grids) > 1:
        raise ValueError(
            f"write_product: the bands' native shapes imply different 10 m grids {sorted(grids)}; "
            "give each band at its native resolution (native_bands() makes them)"
        )
    height, width = grids.pop()
    if height % 6 or width % 6:
        raise ValueError(f"write_product: the 10 m grid {height} x {width} must be a multiple of 6 each way")
    return height, width


def _at(native: dict[str, np.ndarray], band: str, res: int) -> np.ndarray | None:
    """``band`` resampled from its native resolution to ``res`` (means going coarser, nearest going finer)."""
    if band not in native:
        return None
    have = NATIVE_RESOLUTION[band]
    if res == have:
        return native[band]
    return block_mean(native[band], res // have) if res > have else nearest_upsample(native[band], have // res)


def _valid(arrays: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Pixels that hold data in every band given (all of them when none is)."""
    valid = np.ones(shape, bool)
    for array in arrays:
        valid &= array != 0
    return valid


def _default_scl(bands20: dict[str, np.ndarray], valid20: np.ndarray, offset: int) -> np.ndarray:
    """A plausible 20 m scene classification from the 20 m bands: vegetation where NDVI (B8A, B04) > 0.3,
    else not vegetated; no data where the bands have none."""
    scl = np.full(valid20.shape, 4, np.uint8)
    red, nir = bands20.get("B04"), bands20.get("B8A")
    if red is not None and nir is not None:
        r = red.astype(np.float32) + offset
        n = nir.astype(np.float32) + offset
        scl[(n - r) <= 0.3 * (n + r)] = 5
    scl[~valid20] = 0
    return scl


def _scl_percent(scl: np.ndarray) -> dict[str, float]:
    counts = np.bincount(scl.ravel(), minlength=len(SCL_CLASSES))[: len(SCL_CLASSES)]
    data = max(int(counts[1:].sum()), 1)
    percent = {"NODATA": 100 * counts[0] / scl.size}
    percent |= {name: 100 * counts[i] / data for i, name in enumerate(SCL_CLASSES) if i}
    return {name: float(value) for name, value in percent.items()}


def _preview(tci: np.ndarray) -> np.ndarray:
    """PVI: the 10 m TCI sampled every 32 pixels (343 x 343 for a full tile)."""
    rows = np.minimum(np.arange(max(1, tci.shape[1] // 32)) * 32 + 16, tci.shape[1] - 1)
    cols = np.minimum(np.arange(max(1, tci.shape[2] // 32)) * 32 + 16, tci.shape[2] - 1)
    return np.ascontiguousarray(tci[:, rows][:, :, cols])


def write_image_files(
    safe: Path,
    names: ProductNames,
    native: dict[str, np.ndarray],
    scl: np.ndarray | None,
    origin: tuple[float, float],
    blocksize: int,
) -> tuple[list[str], dict[str, float] | None]:
    """Every JPEG 2000 file of the product into ``safe``'s granule; return the image files (relative to ``safe``,
    no suffix, in the order MTD_MSI*.xml lists them) and, for L2A, the percentage of each scene class."""
    height, width = ten_metre_grid(native)
    offset = BASELINE_OFFSET if has_offset(names.baseline) else 0
    granule = safe / "GRANULE" / names.granule
    img_data, qi_data = granule / "IMG_DATA", granule / "QI_DATA"
    image_files: list[str] = []

    def write(name: str, res: int, data: np.ndarray, folder: Path = img_data) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        _write_jp2(folder / f"{name}.jp2", data, res, names.epsg, origin, blocksize)
        if folder.is_relative_to(img_data):
            image_files.append((folder / name).relative_to(safe).as_posix())

    scl_percent = None
    tci10 = None
    if names.level == "L1C":
        for band in ESA_BANDS:
            if band in native:
                write(f"{names.band_prefix}_{band}", NATIVE_RESOLUTION[band], native[band])
        if all(band in native for band in ("B04", "B03", "B02")):
            tci10 = _true_colour(native["B04"], native["B03"], native["B02"], offset)
            write(f"{names.band_prefix}_TCI", 10, tci10)
    else:
        by_res = {
            res: {band: array for band in layout if (array := _at(native, band, res)) is not None}
            for res, layout in L2A_LAYOUT.items()
        }
        if scl is None:
            scl = _default_scl(by_res[20], _valid(list(by_res[20].values()), (height // 2, width // 2)), offset)
        scl_by_res = {20: scl, 60: block_mode(scl, 3)}
        scl_percent = _scl_percent(scl)
        for res, layout in L2A_LAYOUT.items():
            spectral = by_res.pop(res)
            valid = _valid(list(spectral.values()), (height * 10 // res, width * 10 // res))
            folder = img_data / f"R{res}m"
            for name in layout:
                if name in spectral:
                    data = spectral[name]
                elif name == "TCI" and all(band in spectral for band in ("B04", "B03", "B02")):
                    data = _true_colour(spectral["B04"], spectral["B03"], spectral["B02"], offset)
                    tci10 = data if res == 10 else tci10
                elif name in ("AOT", "WVP"):
                    data = np.where(valid, np.uint16(AOT_DN if name == "AOT" else WVP_DN), np.uint16(0))
                elif name == "SCL":
                    data = scl_by_res[res]
                else:
                    continue
                write(f"{names.band_prefix}_{name}_{res}m", res, data, folder)
            if res in scl_by_res:
                classes = scl_by_res[res]
                cloud = np.select([classes == 9, classes == 8, classes == 10], [90, 50, 20], 0).astype(np.uint8)
                write(f"MSK_CLDPRB_{res}m", res, cloud, qi_data)
                write(f"MSK_SNWPRB_{res}m", res, ((classes == 11) * np.uint8(100)).astype(np.uint8), qi_data)
    if tci10 is not None:
        write(f"{names.band_prefix}_PVI", 320, _preview(tci10), qi_data)
    return image_files, scl_percent
