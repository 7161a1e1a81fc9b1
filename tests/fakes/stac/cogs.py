"""The band files of synthetic STAC items: cloud-optimised GeoTIFFs (uint16, nodata 0, tiled, with overviews)
at each band's native resolution, all on one UTM grid."""

from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds

from eurosat_finetune.data.bands import NATIVE_RESOLUTION
from eurosat_finetune.data.scenes.raster_rows import grid_of
from fakes.sentinel2 import native_bands, sample_product_bands

ORIGIN = (499980.0, 5400000.0)  # the upper-left corner of tile 32UMU (UTM 32N), as the products' fakes use
EPSG = 32632
SIZE = 192  # px at 10 m: 96 at 20 m, 32 at 60 m
BLOCK = 128  # the COGs' tiles, px (the COG driver's least): 2 x 2 of them at 10 m, so reads are ranges
L2A_BANDS = tuple(band for band in NATIVE_RESOLUTION if band != "B10")


def write_cog(
    path: Path,
    pixels: np.ndarray,
    resolution: float,
    origin: tuple[float, float] = ORIGIN,
    epsg: int = EPSG,
    block: int = BLOCK,
) -> Path:
    """``pixels`` (2-D, or bands first) as a COG at ``resolution`` m from ``origin`` in EPSG ``epsg`` (a UTM
    zone): tiled ``block`` px, deflated, nodata 0 (uint8 classes and uint16 DN alike)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = pixels if pixels.ndim == 3 else pixels[None]
    count, height, width = pixels.shape
    profile = {"driver": "COG", "width": width, "height": height, "count": count, "dtype": pixels.dtype.name,
               "crs": CRS.from_epsg(epsg), "transform": from_origin(*origin, resolution, resolution), "nodata": 0,
               "blocksize": block, "compress": "deflate"}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
    return path


# a lake's surface reflectance x 10,000 per band (clear water: some blue and green, next to no infrared)
WATER = {"B01": 350, "B02": 450, "B03": 380, "B04": 200, "B05": 150, "B06": 80, "B07": 70, "B08": 60, "B8A": 50,
         "B09": 30, "B10": 5, "B11": 20, "B12": 15}  # fmt: skip
LAKE = (slice(120, 168), slice(24, 96))  # rows and columns of the 10 m grid: 9 % of the scene


def scene_pixels(seed: int, offset: int, size: int = SIZE) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A scene's L2A bands at their native resolutions, as reflectance x 10,000 (never below 1) and as its
    files hold them, ``offset`` (0 or 1000) added: what a correct reader must turn back into the first; ``size``
    px a side at 10 m (a multiple of 6). A lake (``LAKE``) is the dark surface that shows whether the files hold
    the offset."""
    stack = sample_product_bands(size, size, seed, offset=0)
    noise = np.random.default_rng([seed, 39]).integers(0, 30, stack["B02"][LAKE].shape)
    for band, value in WATER.items():
        stack[band][LAKE] = value + noise
    reflectance = native_bands(stack)
    reflectance = {band: pixels for band, pixels in reflectance.items() if band in L2A_BANDS}
    stored = {band: (pixels + offset).astype(np.uint16) for band, pixels in reflectance.items()}
    return reflectance, stored


def lon_lat_bbox(origin: tuple[float, float] = ORIGIN, size: int = SIZE, epsg: int = EPSG) -> list[float]:
    """West, south, east, north (degrees) of the 10 m grid of ``size`` px from ``origin`` in EPSG ``epsg``."""
    x0, y0 = origin
    return list(transform_bounds(CRS.from_epsg(epsg), "EPSG:4326", x0, y0 - 10 * size, x0 + 10 * size, y0))


def footprint(bbox: list[float]) -> dict:
    west, south, east, north = bbox
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def grid_fields(resolution: int, origin: tuple[float, float] = ORIGIN) -> dict:
    """An asset's ``proj:shape`` and ``proj:transform`` (the grid of its file)."""
    side = SIZE * 10 // resolution
    return {"proj:shape": [side, side], "proj:transform": [resolution, 0, origin[0], 0, -resolution, origin[1]]}


def tile_bytes(path: Path, bbox: list[float]) -> int:
    """The bytes of the COG's full-resolution tiles that intersect ``bbox`` (degrees), from its TIFF tags: what
    a reader of the area alone cannot do without."""
    with rasterio.open(path) as source:
        window = grid_of(source).window_over(tuple(bbox), "EPSG:4326")
        height, width = source.block_shapes[0]
        rows = range(window.row_off // height, (window.row_off + window.height - 1) // height + 1)
        cols = range(window.col_off // width, (window.col_off + window.width - 1) // width + 1)
        return sum(int(source.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=1)) for r in rows for c in cols)
