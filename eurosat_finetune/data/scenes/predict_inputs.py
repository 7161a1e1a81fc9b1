"""What ``eurosat predict`` reads: the files and Sentinel-2 products under ``data.predict_root``, or the STAC
items it names (see :mod:`.stac_items`), as loaders."""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import DataLoader

from eurosat_finetune.data.images import IMAGE_SUFFIXES
from eurosat_finetune.data.loaders import loader, ready_batches_loader
from eurosat_finetune.data.predict_batches import collate_images
from eurosat_finetune.data.prediction_images import PredictionImages
from eurosat_finetune.data.scenes.catalog import SceneOptions, TrainedOn, georeferenced
from eurosat_finetune.data.scenes.sentinel2_products import is_product
from eurosat_finetune.data.scenes.stac_composites import composite_scene
from eurosat_finetune.data.scenes.stac_items import StacItems, is_stac, load_items
from eurosat_finetune.data.scenes.stac_scenes import item_scenes
from eurosat_finetune.data.scenes.windows import SceneWindows
from eurosat_finetune.errors import ConfigError, DataNotFoundError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictInputs:
    """The Sentinel-2 products and other files (images, rasters) found under ``root``, or the STAC items
    ``root`` names (a URL or a ``.json`` file)."""

    root: Path | str
    products: list[Path]
    files: list[Path]
    stac: StacItems | None = None

    @classmethod
    def find(cls, root: Path | str) -> "PredictInputs":
        if is_stac(root):
            return cls(root, [], [], load_items(root))
        root = Path(root)
        if not root.exists():
            raise DataNotFoundError(f"data.predict_root={str(root)!r} does not exist; give a folder, a file or a URL")
        products, files = found_under(root)
        if not products and not files and root.is_file():
            raise DataNotFoundError(
                f"data.predict_root={str(root)!r} is not an image ({', '.join(sorted(IMAGE_SUFFIXES))}), a "
                "georeferenced raster, a Sentinel-2 product or a STAC item"
            )
        if not products and not files:
            raise DataNotFoundError(f"data.predict_root={str(root)!r} holds no images")
        return cls(root, products, files)

    def loaders(
        self,
        options: SceneOptions,
        trained: TrainedOn,
        band_indices: list[int] | None,
        batch_size: int,
        num_workers: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> list[DataLoader]:
        """The images classified whole (``band_indices`` of multispectral ones, as in training), then the
        windows of the scenes (see :meth:`SceneOptions.scenes_among`; STAC items: :func:`item_scenes`, or
        :func:`composite_scene`), those of this process of ``world_size``."""
        if self.stac is None and options.composite != "none":  # products and rasters: one map each
            raise ConfigError(
                f"data.maps.composite={options.composite} composites STAC items (a search URL, an item collection); "
                f"{self.root} is none: drop data.maps.composite"
            )
        left_out: list[str] = []  # STAC items that failed to open, named at the end too
        if self.stac is not None and options.composite == "median":
            composite, left_out = composite_scene(self.stac, options, trained)
            scenes, images = [composite], []
        elif self.stac is not None:
            (scenes, left_out), images = item_scenes(self.stac, options, trained), []
        else:
            scenes, images = options.scenes_among(Path(self.root), self.products, self.files, trained)
        loaders = []
        if images:
            whole = PredictionImages(images, band_indices)
            loaders.append(loader(whole, batch_size, num_workers, collate_fn=collate_images))
        if scenes:  # the dataset deals its blocks to the processes itself
            windows = SceneWindows(scenes, batch_size, rank, world_size, left_out)
            loaders.append(ready_batches_loader(windows, num_workers))
        return loaders


def found_under(root: Path) -> tuple[list[Path], list[Path]]:
    """The Sentinel-2 products and the other files under ``root`` (``root`` may be a product, or one image or
    raster, itself), sorted; files inside products are not listed."""
    if is_product(root):
        return [root], []
    if root.is_file():  # one file, as users give one scene: it is the input
        return [], [root] if root.suffix.lower() in IMAGE_SUFFIXES or georeferenced(root) else []
    products, files = [], []
    for folder, subfolders, names in os.walk(root):
        here = Path(folder)
        for sub in sorted(subfolders):
            if is_product(here / sub):
                products.append(here / sub)
        subfolders[:] = [s for s in subfolders if not s.startswith(".") and here / s not in products]
        for name in names:
            path = here / name
            if name.startswith("."):
                continue
            if is_product(path):
                products.append(path)
            elif path.suffix.lower() in IMAGE_SUFFIXES or georeferenced(path):
                files.append(path)
            elif path.suffix.lower() == ".zip":  # most likely a download gone wrong: say so
                log.warning("%s holds no Sentinel-2 product (no *.SAFE/MTD_MSIL*.xml): skipped", path)
    return sorted(products), sorted(files)
