"""What ``eurosat predict`` finds under ``data.predict_root``: Sentinel-2 products, scenes and images.

A ``.SAFE`` folder or a ``.zip`` holding one is one scene, and nothing inside it is looked at on its
own. Other files are images (by their suffix) or rasters that rasterio opens with a CRS (a ``.jp2``, a
``.vrt`` stack); of those, the ones larger than one window are scenes (see ``data.maps.scenes``). Each
scene gets a map name of its own, checked unique before any window is read: a product's path relative
to ``predict_root`` less ``.SAFE``/``.zip``, or a raster's without its suffix (with it, where two would
meet).
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import rasterio
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt
from rasterio.errors import RasterioIOError

from eurosat_finetune.data.scenes.raster_bands import SceneBands, multispectral_bands, rgb_bands, sentinel2_name
from eurosat_finetune.data.scenes.sentinel2_products import is_product, product_stem, read_product
from eurosat_finetune.data.scenes.sources import ModelUnits, ProductScene, RasterScene, SceneSource
from eurosat_finetune.data.scenes.windows import Scene
from eurosat_finetune.errors import ConfigError, OutsideAreaError

log = logging.getLogger(__name__)

MapScenes = Literal["auto", "all", "none"]
Composite = Literal["none", "median"]


def georeferenced(path: Path) -> bool:
    """Whether rasterio opens ``path`` as a raster with a CRS (a ``.jp2`` band, a ``.vrt`` stack ...)."""
    try:
        with rasterio.open(path) as source:
            return source.crs is not None
    except RasterioIOError:
        return False


def is_scene(path: Path, mode: MapScenes, window_size: int) -> bool:
    """Whether the raster ``path`` is mapped window by window: ``auto``, a georeferenced raster (a CRS)
    larger than one window; ``all``, any raster larger than one window; ``none``, never. A raster of
    one window or less is an image to classify, whatever its georeferencing; files rasterio cannot
    open are too."""
    if mode == "none":
        return False
    try:
        with rasterio.open(path) as source:
            georeferenced = source.crs is not None
            larger = source.height > window_size or source.width > window_size
    except RasterioIOError:
        return False
    return larger and (georeferenced or mode == "all")


def map_names(root: Path, paths: list[Path], products: set[Path]) -> list[str]:
    """One name per scene: a product's path under ``root`` less ``.SAFE``/``.zip``, a raster's less its
    suffix; with its suffix where two would be the same. Still the same: a one-line error naming both."""
    base = root if root.is_dir() and not is_product(root) else root.parent

    def name(path: Path, suffix: bool) -> str:
        relative = path.relative_to(base)
        if path in products or not suffix:
            relative = relative.with_name(product_stem(path) if path in products else relative.stem)
        return relative.as_posix()

    plain = [name(path, False) for path in paths]
    names = [name(path, plain.count(n) > 1) for path, n in zip(paths, plain, strict=True)]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise ConfigError(f"{paths[names.index(n)]} and {paths[i]} would write the same map {n}; move one of them")
    return names


@dataclass(frozen=True)
class TrainedOn:
    """What the model was trained on, which predict reads scenes by."""

    image_size: int | None = None  # their side, px (the windows' default)
    bands: list[str] | None = None  # multispectral bands by name; None: RGB
    resolution: float | None = None  # metres per pixel; None: unknown

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "TrainedOn":
        """The image size and ground resolution that the datamodule's state in a checkpoint records. Not
        the bands: those are the model's (its ``input_bands``), which the command gives as ``data.bands``."""
        return cls(image_size=state.get("image_size", [None])[0], resolution=state.get("ground_resolution"))


@dataclass(frozen=True)
class SceneOptions:
    """What is a scene under ``data.predict_root``, how it is cut into windows and how it is read (``data.maps``).

    Args:
        scenes: Which ``data.predict_root`` files are scenes, mapped window by window (the rest are
            classified whole): ``auto``, georeferenced rasters larger than one window; ``all``, every
            image larger than one window; ``none``, none.
        window: Side of the windows that slide over scenes, px; null is the size of the images the
            model was trained on (64 for EuroSAT).
        stride: Step between windows, dividing ``window``; null is ``window``. Smaller steps overlap the
            windows, and each map cell averages those that cover it.
        raster_bands: The bands of raster scenes whose band descriptions do not name them (not for
            Sentinel-2 products, which name theirs): the names of every band in file order (e.g.
            ``[B02, B03, B04, B08]``), or for an RGB model the red, green and blue band numbers (from 1),
            e.g. ``[4, 3, 2]``. Null: by description; an RGB model reads an undescribed 3- or 4-band raster
            as RGB(N) and a one-band one as grey; other undescribed rasters are refused (a 13-band stack may
            be in EuroSAT's order or ESA's).
        rgb_scale_max: For RGB models only: reflectance x 10,000 (16-bit rasters, products) is scaled
            linearly from [0, this] to the 8-bit [0, 255] and clipped; 2750 is what EuroSAT RGB was made
            with. 8-bit rasters are used as they are.
        raster_offset: For plain rasters only (products' metadata says theirs): subtracted from integer
            pixels; 1000 for a stack of Sentinel-2 bands processed with baseline 04.00 or later (January
            2022 on), which add it. Float rasters are reflectance (0-1), multiplied by 10,000.
        mask_clouds: For L2A products, also treat the scene classification's cloud shadow, cloud and
            thin cirrus pixels (SCL 3, 8, 9, 10) as no data; windows less than half valid are not mapped.
        composite: For STAC items of one area (a search's bbox, or items of one tile): ``none``, one map
            per item; ``median``, one map of the area, ``composite_<first date>_<last date>``, whose pixels
            are per band the median over the items of those clear in each (no data, cloud shadow, cloud and
            cirrus left out, whatever ``mask_clouds`` says; every item needs its SCL asset); a pixel clear
            in no item is no data. Items of other tiles or UTM zones are put onto the grid of the one
            covering most of the area.
        area: Map only this area, ``[west, south, east, north]`` in degrees (EPSG:4326), of every scene
            (products, rasters, STAC items; it replaces a STAC search's bbox, which is the area otherwise):
            windows cover it on each scene's grid, and of a cloud-optimised GeoTIFF only the tiles under it
            are read. Scenes it does not reach are left out, and named; none reached is an error.
    """

    scenes: MapScenes = "auto"
    window: PositiveInt | None = None
    stride: PositiveInt | None = None
    raster_bands: SceneBands = None
    rgb_scale_max: PositiveFloat = 2750.0
    raster_offset: NonNegativeInt = 0
    mask_clouds: bool = False
    composite: Composite = "none"
    area: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        # the parser's types refuse these too; this is for options built in Python
        bands = self.raster_bands or []
        numbers = all(isinstance(band, int) for band in bands)
        if bands and numbers and (len(bands) != 3 or min(bands) < 1):  # type: ignore[type-var]
            raise ConfigError(
                f"data.maps.raster_bands={list(bands)}: give three band numbers (from 1), red, green, blue"
            )
        if not numbers and not all(sentinel2_name(str(band)) == band for band in bands):
            raise ConfigError(
                f"data.maps.raster_bands={list(bands)}: give the numbers of the red, green and blue bands (RGB "
                "models), or name every band of the scenes in file order with Sentinel-2 names, e.g. [B02,B03,B04,B08]"
            )
        if self.rgb_scale_max <= 0:
            raise ConfigError(f"data.maps.rgb_scale_max={self.rgb_scale_max} must be > 0")
        if self.area is not None:
            west, south, east, north = self.area
            if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
                raise ConfigError(
                    f"data.maps.area={list(self.area)}: give [west, south, east, north] in degrees, west < east, "
                    "south < north"
                )

    def scenes_among(
        self, root: Path, products: list[Path], files: list[Path], trained: TrainedOn
    ) -> tuple[list[Scene], list[Path]]:
        """The scenes to map (every product, and the ``files`` that are scenes, see :func:`is_scene`), each
        read as the model was ``trained`` (its image size, bands and metres per pixel) and with its grid of
        windows; and the other files, classified whole. Map names are relative to ``root``."""
        tile, stride = self.window_sizes(trained)
        rasters = [path for path in files if is_scene(path, self.scenes, tile)]
        images = sorted(set(files) - set(rasters))
        paths = products + rasters
        names = map_names(root, paths, set(products))
        units = ModelUnits(trained.bands is not None, self.rgb_scale_max)
        sources, outside = [], []
        for path, name in zip(paths, names, strict=True):
            try:
                sources.append(self.source(path, name, path in products, trained, units))
            except OutsideAreaError as err:
                outside.append(str(err))
                if len(outside) == len(paths):  # none reaches it: say why for the last one
                    raise OutsideAreaError(f"no scene under {root} can be mapped over data.maps.area: {err}") from None
        if outside:
            log.warning("data.maps.area: %d scene(s) left out: %s", len(outside), "; ".join(outside))
        return [self.scene(source, tile, stride) for source in sources], images

    def window_sizes(self, trained: TrainedOn) -> tuple[int, int]:
        """The windows' side and stride, px: ``window`` (else the image size trained on) and ``stride``."""
        tile = self.window or trained.image_size or 64
        stride = self.stride or tile
        if tile < 1 or stride < 1 or tile % stride:
            raise ConfigError(
                f"data.maps.stride={stride} must divide data.maps.window={tile} (each map cell is one stride step)"
            )
        return tile, stride

    def source(self, path: Path, name: str, product: bool, trained: TrainedOn, units: ModelUnits) -> SceneSource:
        trained_bands, resolution = trained.bands, trained.resolution
        if product:
            product = read_product(path)
            return ProductScene(name, product, trained_bands, units, resolution, self.mask_clouds, self.area)
        with rasterio.open(path) as source:
            descriptions, crs, projected = source.descriptions, source.crs, source.crs and source.crs.is_projected
        if trained_bands is None:
            indexes = rgb_bands(path, descriptions, self.raster_bands)
            channels, preview = ("red", "green", "blue"), indexes
        else:
            indexes, preview = multispectral_bands(path, descriptions, trained_bands, self.raster_bands)
            channels = tuple(trained_bands)
        if resolution is None or not projected:
            why = "it has no CRS" if crs is None else "its CRS is not in metres"
            if resolution is None:
                why = "the checkpoint does not record the ground resolution it was trained at"
            log.warning("%s: mapped at its own pixel size, as %s", path, why)
            resolution = None
        return RasterScene(name, path, indexes, channels, preview, units, self.raster_offset, resolution, self.area)

    @staticmethod
    def scene(source: SceneSource, tile: int, stride: int) -> Scene:
        if source.height < tile or source.width < tile:
            raise ConfigError(
                f"{source.path} is {source.width}x{source.height} px, smaller than one {tile} px window; lower "
                "data.maps.window or set data.maps.scenes=none to classify it whole"
            )
        return Scene(source, tile, stride)
