"""Whole scenes as windows: which files are scenes, the windows that slide over them, and reading each
window (rasterio, one strip of windows at a time) as the uint8 RGB tile the model was trained on."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioIOError
from rasterio.windows import Window
from torch.utils.data import Dataset

from eurosat_finetune.errors import ConfigError, UnreadableImageError

MapScenes = Literal["auto", "all", "none"]


@dataclass(frozen=True)
class Scene:
    """A raster to map: its size, the windows' grid, and how its bands become RGB."""

    path: Path
    height: int
    width: int
    rows: int  # window origins down (every ``stride`` pixels)
    cols: int  # window origins across

    @property
    def windows(self) -> int:
        return self.rows * self.cols


def is_scene(path: Path, mode: MapScenes, tile_size: int) -> bool:
    """Whether ``path`` is mapped window by window: ``auto``, a georeferenced raster (a CRS);
    ``all``, any raster larger than one window; ``none``, never. Files rasterio cannot open are not."""
    if mode == "none":
        return False
    try:
        with rasterio.open(path) as source:
            georeferenced = source.crs is not None
            larger = source.height > tile_size or source.width > tile_size
    except RasterioIOError:
        return False
    return georeferenced if mode == "auto" else larger


def scene_of(path: Path, tile_size: int, stride: int, bands: list[int]) -> Scene:
    """The scene's window grid; a scene smaller than one window, or without the bands asked for, is refused."""
    with rasterio.open(path) as source:
        height, width, count = source.height, source.width, source.count
    if height < tile_size or width < tile_size:
        raise ConfigError(
            f"{path} is {width}x{height} px, smaller than one {tile_size} px window; lower data.tile_size or set "
            "data.map_scenes=none to classify it whole"
        )
    if count > 1 and max(bands) > count:  # one band is read as grey
        raise ConfigError(
            f"{path} has {count} band(s); data.scene_bands={bands} asks for band {max(bands)}. Give the red, green "
            "and blue bands' numbers (from 1), e.g. --data.scene_bands [4,3,2] for Sentinel-2 band order"
        )
    return Scene(path, height, width, (height - tile_size) // stride + 1, (width - tile_size) // stride + 1)


def to_uint8(pixels: np.ndarray, scale_max: float) -> np.ndarray:
    """Scene pixels as the 8-bit range EuroSAT RGB was made in: uint8 as it is, anything else (16-bit
    reflectance, floats) scaled linearly from [0, ``scale_max``] to [0, 255] and clipped."""
    if pixels.dtype == np.uint8:
        return pixels
    return np.clip(pixels.astype(np.float32) * (255.0 / scale_max), 0, 255).round().astype(np.uint8)


class SceneWindows(Dataset):
    """Every window of every scene, in reading order, as ``{"images": uint8 (3, t, t) tensor, "scene",
    "row", "col", "valid"}`` (see :mod:`.predict_batches`); ``valid`` is false for a window that holds
    only nodata. A worker reads one strip of windows (``t`` rows of the scene) at a time, so memory is
    bounded by the scene's width."""

    def __init__(self, scenes: list[Scene], tile_size: int, stride: int, bands: list[int], scale_max: float) -> None:
        self.scenes, self.tile_size, self.stride = scenes, tile_size, stride
        self.bands, self.scale_max = bands, scale_max
        self.starts = np.cumsum([0] + [scene.windows for scene in scenes])
        self._strip: tuple[int, int, np.ndarray, np.ndarray | None] | None = None

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene = int(np.searchsorted(self.starts, index, side="right") - 1)
        row, col = divmod(index - int(self.starts[scene]), self.scenes[scene].cols)
        pixels, valid = self.strip(scene, row)
        x, t = col * self.stride, self.tile_size
        window = pixels[:, :, x : x + t]
        is_valid = bool(valid is None or valid[:, x : x + t].any())
        image = torch.from_numpy(np.ascontiguousarray(window))
        return {"images": image, "scene": scene, "row": row, "col": col, "valid": is_valid}

    def strip(self, scene: int, row: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows ``row * stride`` to ``+ tile_size`` of the scene, all bands as uint8 RGB, and where they
        hold data (None if the file declares no nodata)."""
        if self._strip is None or self._strip[:2] != (scene, row):
            path = self.scenes[scene].path
            window = Window(0, row * self.stride, self.scenes[scene].width, self.tile_size)
            try:
                with rasterio.open(path) as source:
                    bands = self.bands if source.count > 1 else [1, 1, 1]  # one band: grey, as RGB
                    pixels = source.read(bands, window=window)
                    nodata = source.nodata
            except RasterioIOError as err:
                raise UnreadableImageError(f"cannot read scene {path} ({err}); replace or delete it") from None
            valid = (pixels != nodata).any(axis=0) if nodata is not None else None
            self._strip = (scene, row, to_uint8(pixels, self.scale_max), valid)
        return self._strip[2], self._strip[3]


@dataclass(frozen=True)
class SceneOptions:
    """The data options that decide what is a scene and how it is cut into windows."""

    map_scenes: MapScenes
    tile_size: int | None
    tile_stride: int | None
    bands: list[int]
    scale_max: float

    def __post_init__(self) -> None:
        if len(self.bands) != 3 or min(self.bands) < 1:
            raise ConfigError(f"data.scene_bands={self.bands}: give three band numbers (from 1), red, green, blue")
        if self.scale_max <= 0:
            raise ConfigError(f"data.scene_scale_max={self.scale_max} must be > 0")

    def split(
        self, files: list[Path], trained_size: int | None, trained_bands: list[int] | None = None
    ) -> tuple[list[Path], SceneWindows | None]:
        """The files to classify whole, and the windows of the scenes (None if there are none). A model
        trained on multispectral bands (``trained_bands``) classifies files whole only, for now."""
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
        if trained_bands is not None:
            raise ConfigError(
                f"mapping scenes with a multispectral model is not built yet ({', '.join(map(str, scenes[:3]))}); "
                "set data.map_scenes=none to classify each file whole"
            )
        grids = [scene_of(path, tile, stride, self.bands) for path in scenes]
        return images, SceneWindows(grids, tile, stride, self.bands, self.scale_max)
