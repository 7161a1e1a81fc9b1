"""Whole scenes as windows: which files are scenes, the windows that slide over them, and reading each
window (rasterio, one strip of windows at a time) as the tile the model was trained on: uint8 RGB, or
the multispectral bands it was trained on, as stored (less a product's offset)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioIOError
from rasterio.windows import Window
from torch.utils.data import Dataset

from eurosat_finetune.data.images import IMAGE_SUFFIXES
from eurosat_finetune.data.scene_bands import multispectral_bands, sentinel2_name
from eurosat_finetune.errors import ConfigError, UnreadableImageError

MapScenes = Literal["auto", "all", "none"]


@dataclass(frozen=True)
class Scene:
    """A raster to map: its size, the windows' grid, and which of its bands are read."""

    path: Path
    height: int
    width: int
    rows: int  # window origins down (every ``stride`` pixels, the last aligned to the bottom edge)
    cols: int  # window origins across (the last aligned to the right edge)
    bands: tuple[int, ...] = (1, 2, 3)  # band numbers (from 1) read for each window, in the model's order
    preview_bands: tuple[int, ...] = (1, 2, 3)  # shown as red, green, blue in the preview

    @property
    def windows(self) -> int:
        return self.rows * self.cols


def is_scene(path: Path, mode: MapScenes, tile_size: int) -> bool:
    """Whether ``path`` is mapped window by window: ``auto``, a georeferenced raster (a CRS) larger than
    one window; ``all``, any raster larger than one window; ``none``, never. A raster of one window or
    less is an image to classify, whatever its georeferencing; files rasterio cannot open are too."""
    if mode == "none":
        return False
    try:
        with rasterio.open(path) as source:
            georeferenced = source.crs is not None
            larger = source.height > tile_size or source.width > tile_size
    except RasterioIOError:
        return False
    return larger and (georeferenced or mode == "all")


def georeferenced(path: Path) -> bool:
    """Whether rasterio opens ``path`` as a raster with a CRS (a ``.jp2`` band, a ``.vrt`` stack ...)."""
    try:
        with rasterio.open(path) as source:
            return source.crs is not None
    except RasterioIOError:
        return False


def predict_files(root: Path) -> list[Path]:
    """The files ``eurosat predict`` reads under ``root``, sorted: images (by their suffix) and any other
    file that rasterio opens with a CRS, such as Sentinel-2's ``..._TCI_10m.jp2`` and ``.vrt`` stacks."""
    paths = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES or georeferenced(p)]


def window_origin(index: int, stride: int, tile_size: int, extent: int) -> int:
    """Where window ``index`` starts along a side of ``extent`` px: every ``stride`` px, the last one
    aligned to the edge, so that the windows cover the whole side."""
    return min(index * stride, extent - tile_size)


def windows_along(extent: int, stride: int, tile_size: int) -> int:
    """How many windows cover a side of ``extent`` px (the last aligned to the edge)."""
    return -(-(extent - tile_size) // stride) + 1


def scene_of(
    path: Path, tile_size: int, stride: int, bands: list[int] | list[str], trained_bands: list[str] | None = None
) -> Scene:
    """The scene's window grid and bands (RGB by the numbers ``bands``; a multispectral model's
    ``trained_bands`` by name, see :mod:`.scene_bands`); a scene smaller than one window, or without
    the bands asked for, is refused."""
    with rasterio.open(path) as source:
        height, width, count = source.height, source.width, source.count
    if height < tile_size or width < tile_size:
        raise ConfigError(
            f"{path} is {width}x{height} px, smaller than one {tile_size} px window; lower data.tile_size or set "
            "data.map_scenes=none to classify it whole"
        )
    grid = (height, width, windows_along(height, stride, tile_size), windows_along(width, stride, tile_size))
    if trained_bands is not None:
        return Scene(path, *grid, *multispectral_bands(path, trained_bands, bands))
    if not all(isinstance(band, int) for band in bands):
        raise ConfigError(f"data.scene_bands={bands}: for an RGB model give the red, green and blue bands' numbers")
    if count > 1 and max(bands) > count:  # one band is read as grey
        raise ConfigError(
            f"{path} has {count} band(s); data.scene_bands={bands} asks for band {max(bands)}. Give the red, green "
            "and blue bands' numbers (from 1), e.g. --data.scene_bands [4,3,2] for Sentinel-2 band order"
        )
    read = tuple(bands) if count > 1 else (1, 1, 1)  # one band: grey, as RGB
    return Scene(path, *grid, read, read)


def to_uint8(pixels: np.ndarray, scale_max: float) -> np.ndarray:
    """Scene pixels as the 8-bit range EuroSAT RGB was made in: uint8 as it is, anything else (16-bit
    reflectance, floats) scaled linearly from [0, ``scale_max``] to [0, 255] and clipped."""
    if pixels.dtype == np.uint8:
        return pixels
    return np.clip(pixels.astype(np.float32) * (255.0 / scale_max), 0, 255).round().astype(np.uint8)


class SceneWindows(Dataset):
    """Every window of every scene, in reading order, as ``{"images": (C, t, t) tensor, "scene", "row",
    "col", "valid"}`` (see :mod:`.predict_batches`); ``valid`` is false for a window that holds only
    nodata. Pixels are uint8 RGB (scaled from [0, ``scale_max``] when not 8-bit), or for a
    ``multispectral`` model int32 as stored less ``offset``. A worker reads one strip of windows (``t``
    rows of the scene) at a time, so memory is bounded by the scene's width."""

    def __init__(
        self,
        scenes: list[Scene],
        tile_size: int,
        stride: int,
        scale_max: float = 3000.0,
        multispectral: bool = False,
        offset: int = 0,
    ) -> None:
        self.scenes, self.tile_size, self.stride = scenes, tile_size, stride
        self.scale_max, self.multispectral, self.offset = scale_max, multispectral, offset
        self.starts = np.cumsum([0] + [scene.windows for scene in scenes])
        self._strip: tuple[int, int, np.ndarray, np.ndarray | None] | None = None

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene = int(np.searchsorted(self.starts, index, side="right") - 1)
        row, col = divmod(index - int(self.starts[scene]), self.scenes[scene].cols)
        pixels, valid = self.strip(scene, row)
        x, t = window_origin(col, self.stride, self.tile_size, self.scenes[scene].width), self.tile_size
        window = pixels[:, :, x : x + t]
        is_valid = bool(valid is None or valid[:, x : x + t].any())
        image = torch.from_numpy(np.ascontiguousarray(window))
        return {"images": image, "scene": scene, "row": row, "col": col, "valid": is_valid}

    def strip(self, scene: int, row: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows ``row * stride`` to ``+ tile_size`` of the scene, its bands as the model takes them, and
        where they hold data (None if the file declares no nodata)."""
        if self._strip is None or self._strip[:2] != (scene, row):
            path = self.scenes[scene].path
            top = window_origin(row, self.stride, self.tile_size, self.scenes[scene].height)
            window = Window(0, top, self.scenes[scene].width, self.tile_size)
            try:
                with rasterio.open(path) as source:
                    pixels = source.read(list(self.scenes[scene].bands), window=window)
                    nodata = source.nodata
            except RasterioIOError as err:
                raise UnreadableImageError(f"cannot read scene {path} ({err}); replace or delete it") from None
            valid = (pixels != nodata).any(axis=0) if nodata is not None else None
            self._strip = (scene, row, self.as_trained(pixels), valid)
        return self._strip[2], self._strip[3]

    def as_trained(self, pixels: np.ndarray) -> np.ndarray:
        if self.multispectral:  # as stored, less the offset of products processed since 2022
            return np.clip(pixels.astype(np.int32) - self.offset, 0, None)
        return to_uint8(pixels, self.scale_max)


@dataclass(frozen=True)
class SceneOptions:
    """The data options that decide what is a scene, how it is cut into windows and which bands are read."""

    map_scenes: MapScenes
    tile_size: int | None
    tile_stride: int | None
    bands: list[int] | list[str]
    scale_max: float
    offset: int = 0

    def __post_init__(self) -> None:
        numbers = all(isinstance(band, int) for band in self.bands)
        if numbers and (len(self.bands) != 3 or min(self.bands) < 1):
            raise ConfigError(f"data.scene_bands={self.bands}: give three band numbers (from 1), red, green, blue")
        if not numbers and not all(sentinel2_name(str(band)) == band for band in self.bands):
            raise ConfigError(
                f"data.scene_bands={self.bands}: give the numbers of the red, green and blue bands (RGB models), "
                "or name every band of the scenes in file order with Sentinel-2 names, e.g. [B02,B03,B04,B08]"
            )
        if self.scale_max <= 0:
            raise ConfigError(f"data.scene_scale_max={self.scale_max} must be > 0")

    def split(
        self, files: list[Path], trained_size: int | None, trained_bands: list[str] | None = None
    ) -> tuple[list[Path], SceneWindows | None]:
        """The files to classify whole, and the windows of the scenes (None if there are none), for a
        model trained on images of ``trained_size`` and on ``trained_bands`` (None: RGB)."""
        tile = self.tile_size or trained_size or 64
        stride = self.tile_stride or tile
        if tile < 1 or stride < 1 or tile % stride:
            raise ConfigError(
                f"data.tile_stride={stride} must divide data.tile_size={tile} (each map cell is one stride step)"
            )
        scenes = [path for path in files if is_scene(path, self.map_scenes, tile)]
        images = sorted(set(files) - set(scenes))
        if not scenes:
            return images, None
        grids = [scene_of(path, tile, stride, self.bands, trained_bands) for path in scenes]
        multispectral = trained_bands is not None
        return images, SceneWindows(grids, tile, stride, self.scale_max, multispectral, self.offset)
