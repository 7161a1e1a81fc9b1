"""A scene as the model reads it: rows of its grid, every channel in the model's band order and units.

Two kinds of scene: a Sentinel-2 product (:class:`ProductScene`, its band files resampled onto one grid,
radiometry from its metadata) and a raster file (:class:`RasterScene`, bands by description or by
``data.maps.raster_bands``). Both give rows ``top..bottom`` as the model was trained on its pixels:

- a multispectral model: reflectance x 10,000 without offset (EuroSAT MS's units), uint16;
- an RGB model: 8-bit true colour, as EuroSAT RGB. Reflectance x 10,000 is scaled by 255 / ``scale_max``
  and clipped; ``scale_max`` 2,750 is what EuroSAT RGB was made with (its per-channel means over the 27,000
  images are EuroSAT MS's published B04/B03/B02 means x 255 / 2,752, 2,742 and 2,742:
  ``benchmarks/rgb_scale.py``). 8-bit rasters are used as they are.
"""

import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine, array_bounds
from rasterio.warp import reproject

from eurosat_finetune.data.bands import NATIVE_RESOLUTION, RGB_BANDS
from eurosat_finetune.data.scenes.raster_rows import Grid, RasterRows, grid_of, lattice, rows_onto
from eurosat_finetune.data.scenes.sentinel2_products import Sentinel2Product
from eurosat_finetune.errors import BandError, ConfigError, OutsideAreaError, UnreadableImageError

log = logging.getLogger(__name__)

CLOUD_CLASSES = (3, 8, 9, 10)  # L2A scene classification: cloud shadow, cloud medium and high, thin cirrus
FLOAT_REFLECTANCE = 10_000  # float rasters hold reflectance (0..1): times this is EuroSAT MS's units


@dataclass(frozen=True)
class ModelUnits:
    """What the model was trained on: multispectral reflectance x 10,000, or 8-bit RGB."""

    multispectral: bool
    scale_max: float = 2750.0

    @property
    def dtype(self) -> type:
        return np.uint16 if self.multispectral else np.uint8

    def from_reflectance(self, reflectance: np.ndarray) -> np.ndarray:
        """Reflectance x 10,000 (offset removed) as the model's pixels."""
        out = np.empty(reflectance.shape, self.dtype)
        self.convert(reflectance, 1.0, 0.0, out)
        return out

    def convert(self, data: np.ndarray, scale: float, shift: float, out: np.ndarray, owned: bool = False) -> None:
        """``data * scale + shift`` (reflectance x 10,000) as the model's pixels, into ``out``; ``owned``
        float32 ``data`` (fresh from resampling) is used as scratch."""
        if self.multispectral and scale == 1 and float(shift).is_integer() and np.issubdtype(data.dtype, np.integer):
            if data.dtype == np.uint16 and shift <= 0:  # a band file's DN less its offset, in uint16: 4 times faster
                np.maximum(data, -int(shift), out=out)  # below the offset is reflectance below 0: 0
                np.subtract(out, -int(shift), out=out)
            else:
                np.clip(data.astype(np.int32) + int(shift), 0, 65535, out=out, casting="unsafe")  # exact
            return
        value = data.astype(np.float32, copy=not owned)  # never change a block kept for the next rows
        unit = 1.0 if self.multispectral else 255.0 / self.scale_max
        if scale * unit != 1:
            value *= scale * unit
        if shift:
            value += shift * unit
        np.clip(np.rint(value, out=value), 0, np.iinfo(self.dtype).max, out=out, casting="unsafe")


class SceneSource(ABC):
    """A scene: its map name, the grid it is mapped on, and its rows as the model takes them."""

    def __init__(self, name: str, path: Path | str, grid: Grid, channels: tuple[str, ...], units: ModelUnits) -> None:
        self.name, self.path, self.grid, self.channels, self.units = name, path, grid, channels, units

    @property
    def height(self) -> int:
        return self.grid.height

    @property
    def width(self) -> int:
        return self.grid.width

    @abstractmethod
    def read_rows(self, top: int, bottom: int) -> tuple[np.ndarray, np.ndarray]:
        """Grid rows ``top..bottom``: pixels ``(channels, rows, width)`` in the model's units, and where
        every channel holds data ``(rows, width)``."""

    @abstractmethod
    def preview(self, height: int, width: int) -> np.ndarray:
        """The scene as true colour, ``(3, height, width)``: uint8 as the model sees it, or reflectance."""

    @property
    def rows_above(self) -> int:
        """Grid rows above the scene's first row, where its files' blocks begin (an area cut from a scene
        starts inside one): blocks of rows are counted from there, so each is a tile row of the files."""
        return 0

    @abstractmethod
    def tags(self) -> dict[str, str]:
        """What the map records of where its pixels came from."""

    @abstractmethod
    def block_rows(self) -> int:
        """Grid rows read together (a tile row of its finest file), so reading in such blocks decodes once."""

    def deal_rows(self) -> int:
        """Grid rows under a tile row of its coarsest file that is not 60 m: where readers' shares should
        not meet (see :func:`eurosat_finetune.data.scenes.windows.dealt`; the 60 m files are small)."""
        return self.block_rows()

    @abstractmethod
    def close(self) -> None:
        """Let the open files go (each reading process opens its own)."""


class ProductScene(SceneSource):
    """A Sentinel-2 product: each band from its finest file, resampled onto the grid of its finest
    bands (10 m; the model's training resolution if that is known and another), DN made reflectance x
    10,000 with the product's quantification and offsets; DN 0 (NODATA) and, with ``mask_clouds``, L2A's
    cloud, cloud-shadow and cirrus classes are no data. ``area`` (west, south, east, north in degrees, a
    STAC search's bbox): only the grid's pixels that cover it are mapped, the same pixels as mapping the
    whole product, and only the files' columns under it are read."""

    def __init__(
        self,
        name: str,
        product: Sentinel2Product,
        trained_bands: list[str] | None,
        units: ModelUnits,
        resolution: float | None,
        mask_clouds: bool,
        area: tuple[float, float, float, float] | None = None,
    ) -> None:
        bands = list(trained_bands or RGB_BANDS)
        never = [band for band in bands if band == "B10" and product.level == "L2A"]  # removed by L2A processing
        if never:
            raise BandError(
                f"{product.path} ({product.level}) has no band B10, which the model was trained on; map it with a "
                "model trained without B10 (data.bands not naming them)"
            )
        missing = [band for band in bands if band not in product.band_files]
        if missing:
            raise UnreadableImageError(
                f"{product.path} lacks the file of band {', '.join(missing)} (GRANULE/*/IMG_DATA); download it again"
            )
        for band in bands:
            file_resolution = product.band_files[band][1]
            if file_resolution > NATIVE_RESOLUTION[band]:
                log.warning(
                    "%s: band %s read from its %d m file (the finer one is missing)",
                    product.path,
                    band,
                    file_resolution,
                )
        if mask_clouds and product.scl_file is None:
            raise ConfigError(
                f"data.maps.mask_clouds needs the scene classification (SCL) of an L2A product; {product.path} is "
                f"{product.level} without one: drop data.maps.mask_clouds"
            )
        self.product, self.bands = product, bands
        self.readers = {band: RasterRows(product.band_files[band][0], (1,), nodata=product.nodata) for band in bands}
        self.scl = RasterRows(product.scl_file, (1,), nodata=0) if mask_clouds and product.scl_file else None
        finest = min(product.band_files.values(), key=lambda file: file[1])[0]
        with rasterio.open(finest) as source:
            grid = grid_of(source)
        if resolution is not None and abs(resolution - grid.resolution) > 1e-6 * resolution:
            grid = grid.scaled_to(resolution)
        self.own_grid, self.placed = grid, "own pixels"  # how its pixels reach the grid mapped (see put_onto)
        if area is not None:
            grid = area_of(grid, area, product.path)
        super().__init__(name, product.path, grid, tuple(bands), units)
        self.read_only_over(grid)
        for reader in [*self.readers.values(), self.scl]:
            if reader is not None:
                reader.header()  # every file opened now, by whoever builds the scene (see stac_scenes)

    def read_only_over(self, grid: Grid) -> None:
        """Map ``grid``: read only the files' columns under it (a COG's tiles beside it are never fetched)."""
        self.grid = grid
        if grid != self.own_grid:
            for reader in [*self.readers.values(), self.scl]:
                if reader is not None:
                    reader.only_over(self.bounds, grid.crs)

    def put_onto(self, grid: Grid) -> None:
        """Map onto ``grid`` (a composite's) rather than its own: cut from its pixels where ``grid`` lies on
        them (its own lattice, or a tile of the same UTM zone: its pixels as they are), else warped onto it
        (another zone); no data where it does not reach."""
        self.placed = "own pixels" if lattice(self.own_grid, grid) else f"warped from {self.own_grid.crs}"
        self.read_only_over(grid)

    @property
    def rows_above(self) -> int:
        whole = self.own_grid
        if self.grid.crs != whole.crs:
            return 0
        return round((whole.transform.f - self.grid.transform.f) / self.grid.resolution)

    def read_rows(self, top: int, bottom: int) -> tuple[np.ndarray, np.ndarray]:
        pixels = np.empty((len(self.bands), bottom - top, self.width), self.units.dtype)
        valid = np.ones((bottom - top, self.width), bool)
        for channel, band in enumerate(self.bands):
            data, band_valid = rows_onto(self.readers[band], self.grid, top, bottom)
            scale, shift = self.product.to_eurosat_units(band)
            # band files are integers: float32 is fresh from resampling, free to reuse
            self.units.convert(data[0], scale, shift, pixels[channel], owned=data.dtype == np.float32)
            valid &= band_valid
        if self.scl is not None:
            classes, _ = rows_onto(self.scl, self.grid, top, bottom, Resampling.nearest)
            valid &= ~np.isin(classes[0], CLOUD_CLASSES)
        return pixels, valid

    def preview(self, height: int, width: int) -> np.ndarray:
        bands = []
        for band in RGB_BANDS if all(b in self.product.band_files for b in RGB_BANDS) else [self.bands[0]] * 3:
            reader = self.readers.get(band) or RasterRows(self.product.band_files[band][0], (1,))
            try:
                with rasterio.open(reader.path) as source:  # JPEG 2000 decodes a lower level
                    pixels = preview_of(source, self.grid, height, width)[0]
            except RasterioIOError as err:
                raise UnreadableImageError(reader.unreadable(err)) from None
            scale, shift = self.product.to_eurosat_units(band)
            bands.append(np.where(pixels > 0, pixels * scale + shift, 0))
        return np.stack(bands)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """The grid's left, bottom, right, top, in its CRS."""
        return array_bounds(self.height, self.width, self.grid.transform)

    def tags(self) -> dict[str, str]:
        product = self.product
        return {
            "product": product.name,
            "processing_level": product.level,
            "processing_baseline": product.baseline,
            "bands": json.dumps(self.bands),
            "offsets_applied": json.dumps({band: product.offsets.get(band, 0) for band in self.bands}),
            "quantification_value": str(product.quantification),
            "cloud_masked": json.dumps(self.scl is not None),
        }

    def block_rows(self) -> int:
        return min(self.grid_rows(band) for band in self.bands)

    def deal_rows(self) -> int:
        return max([self.grid_rows(band) for band in self.bands if self.product.band_files[band][1] <= 20], default=1)

    def grid_rows(self, band: str) -> int:
        """Grid rows under one block of ``band``'s file."""
        reader = self.readers[band]
        return max(1, round(reader.block_rows * reader.grid.resolution / self.grid.resolution))

    def close(self) -> None:
        for reader in [*self.readers.values(), self.scl]:
            if reader is not None:
                reader.close()


def area_of(grid: Grid, area: tuple[float, float, float, float], path: Path | str) -> Grid:
    """The pixels of ``grid`` that cover ``area`` (west, south, east, north in degrees); a scene it does not
    reach is refused in one line."""
    if grid.crs is None:
        raise OutsideAreaError(f"{path} has no CRS, so data.maps.area cannot be found in it; drop data.maps.area")
    window = grid.window_over(area, "EPSG:4326")
    if not window.width or not window.height:
        raise OutsideAreaError(f"{path} does not reach the area {list(area)} (west, south, east, north in degrees)")
    offset = Affine.translation(window.col_off, window.row_off)
    return Grid(grid.crs, grid.transform @ offset, window.height, window.width)


def preview_of(
    source: rasterio.DatasetReader, grid: Grid, height: int, width: int, indexes: tuple[int, ...] = (1,)
) -> np.ndarray:
    """Bands ``indexes`` of ``source`` over ``grid`` as ``(bands, height, width)`` pixels, from the coarsest
    level that serves (a COG's overview, a JPEG 2000's resolution level), averaged; 0 where the file does
    not reach."""
    own = grid_of(source)
    shape = (len(indexes), height, width)
    if grid.transform == own.transform and grid.crs == own.crs:  # the file's own grid: read whole
        return source.read(list(indexes), out_shape=shape, resampling=Resampling.average)
    bounds = array_bounds(grid.height, grid.width, grid.transform)
    window = own.window_over(bounds, grid.crs)
    out = np.zeros(shape, source.dtypes[indexes[0] - 1])
    if not window.width or not window.height:
        return out
    # read about as many pixels as the preview has, then put them onto its grid
    size = (max(1, round(window.height * height / grid.height)), max(1, round(window.width * width / grid.width)))
    pixels = source.read(list(indexes), window=window, out_shape=(len(indexes), *size), resampling=Resampling.average)
    scale = Affine.scale(window.width / size[1], window.height / size[0])
    reproject(
        pixels,
        out,
        src_transform=source.window_transform(window) @ scale,
        src_crs=source.crs,
        src_nodata=0,
        dst_transform=grid.transform @ Affine.scale(grid.width / width, grid.height / height),
        dst_crs=grid.crs,
        dst_nodata=0,
        resampling=Resampling.nearest,
    )
    return out


class RasterScene(SceneSource):
    """A raster file: bands ``indexes`` (from 1) in the model's order, resampled onto ``resolution``
    when given, over ``area`` (west, south, east, north in degrees) if given. Integers are taken as stored
    less ``offset`` (reflectance x 10,000, or 8-bit colour); floats as reflectance (0..1), times 10,000."""

    def __init__(
        self,
        name: str,
        path: Path,
        indexes: tuple[int, ...],
        channels: tuple[str, ...],
        preview_indexes: tuple[int, ...],
        units: ModelUnits,
        offset: int,
        resolution: float | None,
        area: tuple[float, float, float, float] | None = None,
    ) -> None:
        self.reader = RasterRows(str(path), indexes)
        with rasterio.open(path) as source:
            grid, self.dtype = grid_of(source), np.dtype(source.dtypes[indexes[0] - 1])
        self.resampled_from = None
        if resolution is not None and abs(resolution - grid.resolution) > 0.01 * resolution:
            self.resampled_from, grid = grid.resolution, grid.scaled_to(resolution)
        if area is not None:
            grid = area_of(grid, area, path)
            self.reader.only_over(array_bounds(grid.height, grid.width, grid.transform), grid.crs)
        self.offset, self.preview_indexes = offset, preview_indexes
        super().__init__(name, path, grid, channels, units)

    @property
    def as_8_bit(self) -> bool:
        """8-bit colour for an RGB model: used as it is."""
        return self.dtype == np.uint8 and not self.units.multispectral

    def read_rows(self, top: int, bottom: int) -> tuple[np.ndarray, np.ndarray]:
        data, valid = rows_onto(self.reader, self.grid, top, bottom)
        if self.as_8_bit:  # as stored, or enlarged (float32: rounded back to 8 bits)
            return (data if data.dtype == np.uint8 else np.clip(np.rint(data), 0, 255).astype(np.uint8)), valid
        pixels = np.empty(data.shape, self.units.dtype)
        resampled = self.resampled_from is not None  # else ``data`` is the block kept for the next rows
        if np.issubdtype(self.dtype, np.floating):
            self.units.convert(data, FLOAT_REFLECTANCE, 0.0, pixels, owned=resampled)
        else:
            self.units.convert(data, 1.0, -self.offset, pixels, owned=resampled)
        return pixels, valid

    def preview(self, height: int, width: int) -> np.ndarray:
        with rasterio.open(self.path) as source:
            pixels = preview_of(source, self.grid, height, width, self.preview_indexes)
        if self.as_8_bit:
            return pixels
        scale = FLOAT_REFLECTANCE if np.issubdtype(self.dtype, np.floating) else 1
        return self.units.from_reflectance(pixels * scale - (0 if scale > 1 else self.offset))

    def tags(self) -> dict[str, str]:
        tags = {"source": str(self.path), "bands": json.dumps(list(self.channels)), "offset_applied": str(self.offset)}
        if self.resampled_from is not None:
            tags["resampled_from_resolution"] = str(self.resampled_from)
        return tags

    def block_rows(self) -> int:
        reader = self.reader
        return max(1, round(reader.block_rows * reader.grid.resolution / self.grid.resolution))

    def close(self) -> None:
        self.reader.close()
