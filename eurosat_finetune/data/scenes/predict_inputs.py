"""What ``eurosat predict`` reads: the files and Sentinel-2 products under ``data.predict_root``, as loaders."""

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
from eurosat_finetune.data.scenes.windows import SceneWindows
from eurosat_finetune.errors import DataNotFoundError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictInputs:
    """The Sentinel-2 products and other files (images, rasters) found under ``root``."""

    root: Path
    products: list[Path]
    files: list[Path]

    @classmethod
    def find(cls, root: Path) -> "PredictInputs":
        products, files = found_under(root)
        if not products and not files:
            raise DataNotFoundError(f"data.predict_root={str(root)!r} holds no images")
        return cls(root, products, files)

    def loaders(
        self,
        options: SceneOptions,
        trained: TrainedOn,
        batching: tuple[int, int, int],
        band_indices: list[int] | None,
        num_workers: int,
    ) -> tuple[list[DataLoader], SceneWindows | None]:
        """The images classified whole, then the windows of the scenes (see :meth:`SceneOptions.windows`),
        and those windows."""
        found = (self.root, self.products, self.files)
        images, windows = options.windows(*found, trained, batching)
        whole = PredictionImages(images, band_indices)
        loaders = [loader(whole, batching[0], num_workers, collate_fn=collate_images)] if images else []
        if windows is not None:  # it deals its blocks to the processes itself
            loaders.append(ready_batches_loader(windows, num_workers))
        return loaders, windows


def found_under(root: Path) -> tuple[list[Path], list[Path]]:
    """The Sentinel-2 products and the other files under ``root`` (``root`` may be a product itself),
    sorted; files inside products are not listed."""
    if is_product(root):
        return [root], []
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
