"""Rows of a raster file, decoded once, and put onto another grid.

JPEG 2000 decodes whole tiles: reading a 1,024 px tiled band 64 rows at a time decodes each tile 16
times. :class:`RasterRows` reads a file in whole blocks of rows (a tile row), each block once, and keeps
it until reading moves below it, so rows are read top to bottom at the cost of one decode. Which pixels
hold data comes from GDAL's masks (declared nodata, NaN too; internal masks; alpha bands) or from the
caller's nodata value (a Sentinel-2 product's DN 0). A reader told the area it serves
(:meth:`RasterRows.only_over`) reads only the file's columns under it: a cloud-optimised GeoTIFF then gives
only the tiles that intersect the area. :func:`rows_onto` puts rows onto the grid a scene is mapped on: cut
from the file's pixels where the grid lies on them (a part of the file; a 20 m band enlarged onto 10 m; a
neighbouring tile of the same UTM zone), else warped (another zone, another resolution); cubic spline to
enlarge, average otherwise (see docs/maps.md).
"""

import math
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import RasterioIOError
from rasterio.io import MemoryFile
from rasterio.transform import Affine, array_bounds
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window

from eurosat_finetune.errors import UnreadableImageError, first_line

MIN_BLOCK_ROWS = 128  # strips of a GeoTIFF (1 or 16 rows) are read in groups: fewer calls, same pixels
MAX_BLOCK_ROWS = 2048  # an untiled JPEG 2000 is read in parts rather than whole (it then decodes more than once)
RESAMPLING_MARGIN = 4  # source pixels read beyond a block of rows: cubic spline reaches 2 pixels
# GDAL keeps decoded tiles of open files up to 5% of RAM per process (1.2 GB here); the blocks kept here
# make that a second copy, so it is held to what one read of a tile row needs
GDAL_CACHE_BYTES = 64 * 2**20
QUERY = re.compile(r"\?[^\s,'\"()]*")  # a URL's query string (a signed URL's token), up to a space or quote


@dataclass(frozen=True)
class Grid:
    """Where a raster's pixels lie: CRS, geotransform, size."""

    crs: Any
    transform: Affine
    height: int
    width: int

    @property
    def resolution(self) -> float:
        return abs(self.transform.a)

    def scaled_to(self, resolution: float) -> "Grid":
        """The same extent in pixels of ``resolution`` (same units as the CRS)."""
        factor = resolution / self.resolution
        size = (max(1, round(self.height / factor)), max(1, round(self.width / factor)))
        return Grid(self.crs, self.transform @ Affine.scale(factor), *size)

    def covering(self, bounds: tuple[float, float, float, float], crs: Any) -> "Grid":
        """The pixels of this grid's lattice (CRS, resolution, alignment) that cover ``bounds`` (left, bottom,
        right, top in ``crs``), reaching past the grid's own extent where the bounds do."""
        same = crs == self.crs  # also where neither is known (a raster without georeferencing)
        left, bottom, right, top = bounds if same else transform_bounds(crs, self.crs, *bounds, densify_pts=21)
        inverse = ~self.transform
        (x0, y0), (x1, y1) = inverse * (left, top), inverse * (right, bottom)
        col0, row0 = math.floor(min(x0, x1) + 1e-9), math.floor(min(y0, y1) + 1e-9)
        col1, row1 = math.ceil(max(x0, x1) - 1e-9), math.ceil(max(y0, y1) - 1e-9)
        origin = self.transform @ Affine.translation(col0, row0)
        return Grid(self.crs, origin, max(0, row1 - row0), max(0, col1 - col0))

    def window_over(self, bounds: tuple[float, float, float, float], crs: Any) -> Window:
        """The grid's whole pixels covering ``bounds`` (left, bottom, right, top in ``crs``), within the grid;
        empty where they do not meet."""
        cover = self.covering(bounds, crs)
        inverse = ~self.transform
        col0, row0 = (round(value) for value in inverse * (cover.transform.c, cover.transform.f))
        col1, row1 = min(self.width, col0 + cover.width), min(self.height, row0 + cover.height)
        col0, row0 = max(0, col0), max(0, row0)
        return Window(col0, row0, max(0, col1 - col0), max(0, row1 - row0))


def grid_of(source: Any) -> Grid:
    return Grid(source.crs, source.transform, source.height, source.width)


class RasterRows:
    """Bands ``indexes`` of the raster at ``path`` (a GDAL path), read top to bottom in whole blocks of
    rows. Opened lazily, in the process that reads: never pickled open, and a forked DataLoader worker
    opens its own (a GDAL handle shared across a fork reads garbage or fails)."""

    def __init__(self, path: str, indexes: tuple[int, ...], nodata: float | None = None) -> None:
        self.path, self.indexes, self.nodata = path, tuple(indexes), nodata
        self._source: Any = None
        self._opened_by = 0  # the process that opened ``_source``
        self._blocks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._header: tuple[Grid, int] | None = None  # grid and block height, read without keeping it open
        self.columns: tuple[int, int] | None = None  # the file's columns read (start, end); None: all

    def unreadable(self, err: Exception) -> str:
        """Why the file cannot be read (GDAL's own words: rasterio's message points to the exception it was
        raised from), and what to do, in one line."""
        why = first_line(err.__cause__ or err)
        if self.path.startswith("/vsi"):  # a URL (a STAC item's asset): GDAL retried already
            # no query strings: a signed URL's holds its access token, which logs must not keep
            url, why = QUERY.sub("", self.path), QUERY.sub("", why)
            return f"cannot read {url} ({why}); check that it is still there and public, then run again"
        return f"cannot read {self.path} ({why}); replace or delete it"

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"_source": None, "_blocks": {}}

    @property
    def source(self) -> Any:
        if self._source is None or self._opened_by != os.getpid():
            try:
                self._source, self._opened_by, self._blocks = rasterio.open(self.path), os.getpid(), {}
            except RasterioIOError as err:
                raise UnreadableImageError(self.unreadable(err)) from None
        return self._source

    def header(self) -> tuple[Grid, int]:
        if self._header is None:
            try:
                with rasterio.open(self.path) as source:  # the main process sizes blocks: no handle kept
                    self._header = grid_of(source), source.block_shapes[0][0]
            except RasterioIOError as err:
                raise UnreadableImageError(self.unreadable(err)) from None
        return self._header

    @property
    def grid(self) -> Grid:
        """The pixels read: the file's grid, cut to :attr:`columns`."""
        whole = self.header()[0]
        if self.columns is None:
            return whole
        start, end = self.columns
        return Grid(whole.crs, whole.transform @ Affine.translation(start, 0), whole.height, end - start)

    def only_over(self, bounds: tuple[float, float, float, float], crs: Any) -> None:
        """Read from now on only the file's columns under ``bounds`` (left, bottom, right, top in ``crs``),
        and a margin for the resampling kernel: a COG's tiles beside the area are then never fetched. Rows
        are asked for by the caller, so they need no cut."""
        whole = self.header()[0]
        window = whole.window_over(bounds, crs)
        self._blocks = {}  # blocks kept are of the columns read before
        if not window.width or not window.height:  # the file does not meet the area: nothing to read
            self.columns = (0, 0)
            return
        start = max(0, window.col_off - RESAMPLING_MARGIN)
        self.columns = (start, min(whole.width, window.col_off + window.width + RESAMPLING_MARGIN))

    @property
    def block_rows(self) -> int:
        """Rows decoded together: the file's block (tile) height, grouped or split to a workable size."""
        height = self.header()[1]
        if height > MAX_BLOCK_ROWS:
            return 1024
        return height * math.ceil(MIN_BLOCK_ROWS / height)

    def read(self, top: int, bottom: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``top`` to ``bottom`` (clipped to the file): ``(bands, rows, width)`` pixels as stored, and
        where all bands hold data ``(rows, width)``. Blocks above ``top`` are let go."""
        top, bottom = max(0, top), min(self.source.height, bottom)
        size = self.block_rows
        first, last = top // size, (bottom - 1) // size
        for index in [i for i in self._blocks if i < first]:
            del self._blocks[index]
        for index in range(first, last + 1):
            if index not in self._blocks:
                self._blocks[index] = self.read_block(index, size)
        data = np.concatenate([self._blocks[i][0] for i in range(first, last + 1)], axis=1)
        valid = np.concatenate([self._blocks[i][1] for i in range(first, last + 1)], axis=0)
        start = top - first * size
        return data[:, start : start + bottom - top], valid[start : start + bottom - top]

    def read_block(self, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode block ``index`` of ``size`` rows: the one place this file's pixels are decoded."""
        source = self.source
        start, end = self.columns or (0, source.width)
        window = Window(start, index * size, end - start, min(size, source.height - index * size))
        try:
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
                data = source.read(list(self.indexes), window=window)
                valid = self.valid(data, window)
        except RasterioIOError as err:
            raise UnreadableImageError(self.unreadable(err)) from None
        return data, valid

    def valid(self, data: np.ndarray, window: Window) -> np.ndarray:
        """Where every band read holds data: the caller's nodata value if given; else GDAL's masks
        (an alpha band or an internal mask as stored; declared nodata, NaN included, computed here)."""
        source = self.source
        flags = [source.mask_flag_enums[i - 1] for i in self.indexes]
        valid = np.ones(data.shape[1:], bool)
        if self.nodata is not None:
            valid &= (data != self.nodata).all(axis=0)
        elif any(MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in flags):
            valid &= (source.read_masks(list(self.indexes), window=window) > 0).all(axis=0)
        elif source.nodata is not None:
            nodata = source.nodata
            valid &= ~(np.isnan(data) if np.isnan(nodata) else data == nodata).any(axis=0)
        if np.issubdtype(data.dtype, np.floating):  # NaN is never a pixel value
            valid &= ~np.isnan(data).any(axis=0)
        return valid

    def close(self) -> None:
        if self._source is not None and self._opened_by == os.getpid():
            self._source.close()
        self._source, self._blocks = None, {}


def rows_onto(
    rows: RasterRows, grid: Grid, top: int, bottom: int, resampling: Resampling | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``top`` to ``bottom`` of ``grid`` from ``rows``' file: ``(bands, rows, width)`` (as stored where
    the grid's pixels are the file's, else float32) and where they hold data. Enlarging (a 20 m band onto
    10 m) uses cubic splines, as EuroSAT's authors did; otherwise (shrinking, or another CRS at the same
    resolution) pixels are averaged (``resampling`` overrides, e.g. nearest for classes). Pixels without
    data do not bleed into their neighbours (GDAL skips them); where none contributes, or the file does not
    reach, the result has no data."""
    own = rows.grid
    if resampling is None:  # not ``or``: Resampling.nearest is 0, which ``or`` would turn into cubic spline
        resampling = Resampling.cubic_spline if grid.resolution < own.resolution else Resampling.average
    on = lattice(own, grid)
    if on is not None:
        return lattice_rows(rows, on, grid.width, top, bottom, resampling)
    return warped_rows(rows, grid, top, bottom, resampling)


@dataclass(frozen=True)
class Lattice:
    """How a grid's pixels lie on a file's: each file pixel is ``factor`` x ``factor`` grid pixels, and the
    grid's pixel (0, 0) is the file's ``(row, col)`` once divided so (negative, or past the file's size,
    where the grid reaches beyond the file: a neighbouring tile)."""

    factor: int
    row: int
    col: int


def lattice(own: Grid, grid: Grid) -> Lattice | None:
    """How ``grid`` lies on ``own``'s pixels, when both share CRS and axes and ``grid``'s pixels
    divide ``own``'s by a whole factor on the same lattice (a product's 10, 20 and 60 m bands; Sentinel-2
    tiles of one UTM zone, whose corners are on a 60 m lattice); else None."""
    a, g = own.transform, grid.transform
    # axes along the rows and columns, pointing the same ways (north-up, or a raster without georeferencing)
    same_axes = a.b == a.d == g.b == g.d == 0 and a.a * g.a > 0 and a.e * g.e > 0
    if own.crs != grid.crs or not same_axes:
        return None
    # one factor along both axes (pixels need not be square: degrees of latitude and longitude differ)
    factor, col, row = a.a / g.a, (g.c - a.c) / g.a, (g.f - a.f) / g.e
    if abs(a.e / g.e - factor) > 1e-9 * factor:
        return None
    if round(factor) < 1 or any(abs(value - round(value)) > 1e-6 for value in (factor, col, row)):
        return None
    return Lattice(round(factor), round(row), round(col))


def lattice_rows(
    rows: RasterRows, on: Lattice, width: int, top: int, bottom: int, resampling: Resampling
) -> tuple[np.ndarray, np.ndarray]:
    """Grid rows ``top..bottom`` (``width`` wide) of a grid lying on the file's pixels (see :class:`Lattice`):
    the file's rows under them (and a margin for the kernel) enlarged by GDAL's resampling read, which gives
    the warp's values at a twentieth of its cost (measured: 0.03 s against 0.53 s for 4 Mpx of cubic spline),
    then cut to the grid. Where the grid lies within the file, the cut is a view: no copy."""
    factor, own = on.factor, rows.grid
    fine_top, fine_bottom = top + on.row, bottom + on.row  # the rows in the file's pixels divided by factor
    margin = RESAMPLING_MARGIN if factor > 1 else 0
    first = max(0, fine_top // factor - margin)
    last = min(own.height, -(-fine_bottom // factor) + margin)
    if first >= last or not own.width or on.col >= own.width * factor or on.col + width <= 0:
        return np.zeros((len(rows.indexes), bottom - top, width), np.float32), np.zeros((bottom - top, width), bool)
    data, valid = rows.read(first, last)
    if factor > 1:
        data, valid = enlarged(data, valid, factor, own, first, resampling)
    # the grid's rows and columns within what was read, which starts at fine row first * factor, column 0
    row0, col0 = fine_top - first * factor, on.col
    if row0 >= 0 and col0 >= 0 and row0 + bottom - top <= data.shape[1] and col0 + width <= data.shape[2]:
        return data[:, row0 : row0 + bottom - top, col0 : col0 + width], valid[
            row0 : row0 + bottom - top, col0 : col0 + width
        ]
    out = np.zeros((len(data), bottom - top, width), data.dtype)
    covered = np.zeros((bottom - top, width), bool)
    ys = slice(max(0, -row0), min(bottom - top, data.shape[1] - row0))
    xs = slice(max(0, -col0), min(width, data.shape[2] - col0))
    if ys.start < ys.stop and xs.start < xs.stop:
        from_ys, from_xs = slice(ys.start + row0, ys.stop + row0), slice(xs.start + col0, xs.stop + col0)
        out[:, ys, xs], covered[ys, xs] = data[:, from_ys, from_xs], valid[from_ys, from_xs]
    return out, covered


def enlarged(
    data: np.ndarray, valid: np.ndarray, factor: int, own: Grid, first: int, resampling: Resampling
) -> tuple[np.ndarray, np.ndarray]:
    """File rows from ``first`` (``data``, ``valid``), each pixel made ``factor`` x ``factor`` by GDAL's
    resampling read (float32)."""
    count, height, source_width = data.shape
    complete = bool(valid.all())  # the usual case: no no-data to carry through the kernel
    profile = {"driver": "MEM", "width": source_width, "height": height, "count": count, "dtype": "float32"}
    # the slab's own georeferencing (GDAL warns of none, and resamples the same)
    profile |= {"crs": own.crs, "transform": own.transform @ Affine.translation(0, first)}
    with MemoryFile() as memory, memory.open(**profile, nodata=None if complete else np.nan) as source:
        source.write(data.astype(np.float32) if complete else np.where(valid, data, np.nan).astype(np.float32))
        out = source.read(out_shape=(count, height * factor, source_width * factor), resampling=resampling)
    if complete:
        return out, np.ones(out.shape[1:], bool)
    return np.nan_to_num(out, nan=0.0), ~np.isnan(out).any(axis=0)


def warped_rows(
    rows: RasterRows, grid: Grid, top: int, bottom: int, resampling: Resampling
) -> tuple[np.ndarray, np.ndarray]:
    """Grid rows ``top..bottom`` warped from the file's pixels under them (and a margin for the kernel):
    another resolution, or another CRS (an item of a neighbouring UTM zone in a composite)."""
    own = rows.grid
    strip = Grid(grid.crs, grid.transform @ Affine.translation(0, top), bottom - top, grid.width)
    under = own.window_over(array_bounds(strip.height, strip.width, strip.transform), grid.crs)
    out = np.full((len(rows.indexes), bottom - top, grid.width), np.nan, np.float32)
    if under.height and under.width:
        first = max(0, under.row_off - RESAMPLING_MARGIN)
        data, valid = rows.read(first, under.row_off + under.height + RESAMPLING_MARGIN)
        reproject(
            np.where(valid, data, np.nan).astype(np.float32),
            out,
            src_transform=own.transform @ Affine.translation(0, first),
            src_crs=own.crs,
            src_nodata=np.nan,
            dst_transform=strip.transform,
            dst_crs=grid.crs,
            dst_nodata=np.nan,
            resampling=resampling,
            num_threads=1,  # DataLoader workers already use the cores
        )
    return np.nan_to_num(out, nan=0.0), ~np.isnan(out).any(axis=0)
