"""EuroSAT RGB (or any folder of ``<class>/<image>`` files) as a LightningDataModule.

The datamodule only decodes images to uint8 tensors at their native size. Resizing and
normalisation belong to the model (they come from its image processor) and run on the device in
:meth:`eurosat_finetune.model.ViTClassifier.forward`, so batches cross the bus as compact uint8 and
the same checkpoint can be fed raw images anywhere.
"""

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_image

from eurosat_finetune.download import DownloadError, download_file, extract_zip
from eurosat_finetune.sample_data import write_sample_dataset

log = logging.getLogger(__name__)

EUROSAT_RGB_URL = "https://zenodo.org/records/7711810/files/EuroSAT_RGB.zip?download=1"
"""EuroSAT RGB on Zenodo (record 7711810), layout ``EuroSAT_RGB/<Class>/<Class>_<n>.jpg``."""

DATASET_FOLDERS = ("EuroSAT_RGB", "2750")
"""Top-level folders of the two published EuroSAT RGB zips (Zenodo's and the older ``EuroSAT.zip``)."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def find_image_folder(root: Path) -> Path | None:
    """Return the folder whose sub-folders are the classes, or None if ``root`` holds no dataset.

    Accepts ``root/EuroSAT_RGB/<Class>``, ``root/2750/<Class>`` and ``root/<Class>``.
    """
    for name in DATASET_FOLDERS:
        if (root / name).is_dir():
            return root / name
    if root.is_dir() and any(d.is_dir() and _images_in(d) for d in root.iterdir()):
        return root
    return None


def list_images(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    """List ``folder/<class>/<image>`` files: sorted paths, their label indices and the class names.

    Classes are the sub-folders in alphabetical order (as torchvision's ImageFolder orders them).
    """
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels, class_names = [], [], []
    for class_dir in class_dirs:
        images = _images_in(class_dir)
        if not images:
            raise FileNotFoundError(
                f"class folder {class_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                "add images or remove the folder"
            )
        files += images
        labels += [len(class_names)] * len(images)
        class_names.append(class_dir.name)
    return files, labels, class_names


def stratified_split(
    labels: Sequence[int], val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split indices ``0..len(labels)-1`` into stratified train/val/test index arrays.

    A pure function of its arguments (the caller passes labels of a sorted file list): the same
    files, fractions and seed give the same split on every machine, rank and subcommand, whatever
    the global RNG state. Sizes are ``round(fraction * n)`` for val and test; train takes the rest.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must be in "
            "[0, 1) and sum to less than 1"
        )
    labels = np.asarray(labels)
    indices = np.arange(len(labels))
    n_test = round(test_fraction * len(labels))
    n_val = round(val_fraction * len(labels))

    def split_off(pool: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        if size == 0:
            return pool, pool[:0]
        rest, taken = train_test_split(pool, test_size=size, stratify=labels[pool], random_state=seed)
        return np.sort(rest), np.sort(taken)

    rest, test = split_off(indices, n_test)
    train, val = split_off(rest, n_val)
    return train, val, test


class ImageFileDataset(Dataset):
    """Images decoded to RGB ``uint8`` tensors of shape ``(3, H, W)``, with their integer labels."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int]) -> None:
        self.files = list(files)
        self.labels = list(labels)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = decode_image(str(self.files[index]), mode=ImageReadMode.RGB)
        return image, self.labels[index]


class EuroSATDataModule(LightningDataModule):
    """EuroSAT RGB with a seeded, stratified train/val/test split.

    Args:
        root: Folder holding the dataset (``EuroSAT_RGB/<Class>``, ``2750/<Class>`` or ``<Class>``
            folders directly); with ``download`` the archive is fetched and extracted here.
        download: Download and extract ``url`` into ``root`` when no images are found there.
        url: Where to download the dataset zip from.
        md5: Expected md5 of the downloaded zip; null skips the check (the computed md5 is logged).
        sample_images_per_class: If > 0 and ``root`` holds no images, write a synthetic dataset in
            EuroSAT layout with this many images per class instead (offline demos and tests; not
            real data).
        val_fraction: Fraction of all images held out for validation.
        test_fraction: Fraction of all images held out for testing.
        split_seed: Seed of the split alone (not the global seed), so every run sees the same split.
        batch_size: Images per batch (per device).
        num_workers: DataLoader worker processes that decode images.
    """

    def __init__(
        self,
        root: str | Path = "data",
        download: bool = False,
        url: str = EUROSAT_RGB_URL,
        md5: str | None = None,
        sample_images_per_class: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root)
        self.download = download
        self.url = url
        self.md5 = md5
        self.sample_images_per_class = sample_images_per_class
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self._image_folder: Path | None = None
        self._listing: tuple[list[Path], list[int], list[str]] | None = None

    @property
    def archive_path(self) -> Path:
        """Where a downloaded zip is kept (its name taken from the url)."""
        name = Path(self.url.split("?", 1)[0]).name or "dataset.zip"
        return self.root / name

    def image_folder(self) -> Path:
        """The folder whose sub-folders are the classes; fetched or generated first if configured."""
        if self._image_folder is None:
            folder = find_image_folder(self.root)
            if folder is None:
                folder = self._provide_data()
            self._image_folder = folder
        return self._image_folder

    def _provide_data(self) -> Path:
        if self.sample_images_per_class > 0:
            log.info("Writing a synthetic sample dataset to %s", self.root)
            return write_sample_dataset(self.root, self.sample_images_per_class)
        if self.download:
            downloaded = not self.archive_path.is_file()
            if downloaded:
                log.info("Downloading %s to %s", self.url, self.archive_path)
                download_file(self.url, self.archive_path, self.md5)
            try:
                extract_zip(self.archive_path, self.root)
            except DownloadError:
                if downloaded:  # ours and useless; an archive the user placed there is never deleted
                    self.archive_path.unlink()
                raise
            folder = find_image_folder(self.root)
            if folder is not None:
                return folder
            raise FileNotFoundError(
                f"{self.archive_path} extracted into {self.root}, but no <class>/<image> folders "
                "were found there; check data.url"
            )
        raise FileNotFoundError(
            f"no images found under data.root={str(self.root)!r} (looked for "
            f"{' and '.join(str(self.root / n) for n in DATASET_FOLDERS)} and for class folders in "
            f"{self.root}). Set data.download=true to fetch {self.url}, or point data.root at a "
            "folder of <class>/<image> files"
        )

    def _list(self) -> tuple[list[Path], list[int], list[str]]:
        if self._listing is None:
            self._listing = list_images(self.image_folder())
        return self._listing

    @property
    def class_names(self) -> list[str]:
        """Class names in label order: the dataset's class folders, alphabetically."""
        return self._list()[2]

    def prepare_data(self) -> None:
        """Download, extract or generate the data once (Lightning calls this on one process)."""
        self.image_folder()

    def setup(self, stage: str) -> None:
        """Build the three subsets from the seeded stratified split."""
        files, labels, _ = self._list()
        train, val, test = stratified_split(labels, self.val_fraction, self.test_fraction, self.split_seed)

        def subset(indices: np.ndarray) -> ImageFileDataset:
            return ImageFileDataset([files[i] for i in indices], [labels[i] for i in indices])

        self.train_dataset, self.val_dataset, self.test_dataset = subset(train), subset(val), subset(test)

    def _loader(self, dataset: ImageFileDataset, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset)
