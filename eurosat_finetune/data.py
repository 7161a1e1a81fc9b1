"""EuroSAT RGB (or any folder of ``<class>/<image>`` files) as a LightningDataModule.

The datamodule decodes each image once into a memory-mapped uint8 cache (see
:mod:`eurosat_finetune.cache`) and serves uint8 tensors at their native size; training
augmentations (random flips and 90-degree rotations) run on the device after transfer. Resizing and
normalisation belong to the model (they come from its image processor) and run on the device in
:meth:`eurosat_finetune.model.ViTClassifier.forward`, so batches cross the bus as compact uint8 and
the same checkpoint can be fed raw images anywhere.
"""

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset, RandomSampler

from eurosat_finetune.cache import UNREADABLE, decode_all, first_image_size, load_cache
from eurosat_finetune.download import download_file, extract_zip
from eurosat_finetune.errors import (
    ConfigError,
    DataNotFoundError,
    DownloadError,
    SplitMismatchError,
    UnreadableImageError,
)
from eurosat_finetune.images import IMAGE_SUFFIXES, UNREADABLE_ERRORS, image_files, read_image, read_image_at
from eurosat_finetune.sample_data import write_sample_dataset

log = logging.getLogger(__name__)

EUROSAT_RGB_URL = "https://zenodo.org/records/7711810/files/EuroSAT_RGB.zip?download=1"
"""EuroSAT RGB on Zenodo (record 7711810), layout ``EuroSAT_RGB/<Class>/<Class>_<n>.jpg``."""

DATASET_FOLDERS = ("EuroSAT_RGB", "2750")
"""Top-level folders of the two published EuroSAT RGB zips (Zenodo's and the older ``EuroSAT.zip``)."""


def find_image_folder(root: Path) -> Path | None:
    """Return the folder whose sub-folders are the classes, or None if ``root`` holds no dataset.

    Accepts ``root/EuroSAT_RGB/<Class>``, ``root/2750/<Class>`` and ``root/<Class>``.
    """
    for name in DATASET_FOLDERS:
        if (root / name).is_dir():
            return root / name
    if root.is_dir() and any(d.is_dir() and image_files(d) for d in root.iterdir()):
        return root
    return None


def list_images(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    """List ``folder/<class>/<image>`` files: sorted paths, their label indices and the class names.

    Classes are the sub-folders in alphabetical order (as torchvision's ImageFolder orders them).
    """
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels, class_names = [], [], []
    for class_dir in class_dirs:
        images = image_files(class_dir)
        if not images:
            raise DataNotFoundError(
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
        raise ConfigError(
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
    """Images decoded to RGB uint8 ``(3, *size)`` tensors (resized if need be), with their labels."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int], size: tuple[int, int]) -> None:
        self.files = list(files)
        self.labels = list(labels)
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        try:
            return read_image_at(self.files[index], self.size)[0], self.labels[index]
        except UNREADABLE_ERRORS as err:
            raise UnreadableImageError(
                f"cannot read {self.files[index]} ({err}); replace or delete it, or set data.skip_unreadable=true"
            ) from None


class CachedImageDataset(Dataset):
    """Rows ``indices`` of a decoded ``(N, 3, H, W)`` uint8 array (a memory map), with their labels."""

    def __init__(
        self, images: np.ndarray, indices: Sequence[int], files: Sequence[Path], labels: Sequence[int]
    ) -> None:
        self.images = images
        self.indices = list(indices)
        self.files = list(files)
        self.labels = list(labels)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(np.array(self.images[self.indices[index]])), self.labels[index]


class EpochSeededSampler(RandomSampler):
    """A random order that depends only on (seed, epoch), as DistributedSampler's does, so a run
    resumed from a checkpoint sees the same order as one that was never interrupted. (Lightning calls
    ``set_epoch`` each epoch, and swaps in its DistributedSampler under DDP.)"""

    def __init__(self, data_source: Dataset, seed: int) -> None:
        super().__init__(data_source, generator=torch.Generator())
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed + epoch)


def random_dihedral(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply to each image of a ``(B, C, H, W)`` batch a random one of the 8 symmetries of a top-down
    view (flips and 90-degree rotations), drawn per image: a transpose (square images only), a
    horizontal and a vertical flip, each with probability 1/2, compose to each symmetry equally often.
    (torchvision's v2 transforms draw one choice for a whole batch.)"""
    ops = [lambda x: x.flip(-1), lambda x: x.flip(-2)]
    if images.shape[-1] == images.shape[-2]:
        ops.insert(0, lambda x: x.transpose(-1, -2))
    for op in ops:
        chosen = torch.rand(len(images), device=images.device, generator=generator) < 0.5
        images = torch.where(chosen[:, None, None, None], op(images), images)
    return images


class PredictionDataset(Dataset):
    """Unlabelled images for ``predict``; an unreadable file yields ``None`` instead of an error."""

    def __init__(self, files: Sequence[Path]) -> None:
        self.files = list(files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, str]:
        path = self.files[index]
        try:
            return read_image(path), str(path)
        except UNREADABLE_ERRORS:
            return None, str(path)


def collate_predictions(items: list[tuple[torch.Tensor | None, str]]) -> dict[str, Any]:
    """Keep images as a list (their sizes may differ); set the unreadable ones aside by path."""
    return {
        "images": [image for image, _ in items if image is not None],
        "paths": [path for image, path in items if image is not None],
        "unreadable": [path for image, path in items if image is None],
    }


def split_fingerprint(files: Sequence[Path], labels: Sequence[int], folder: Path, *split_args: float) -> str:
    """A short hash of what decides the split: file paths (relative to the dataset folder), labels,
    fractions and seed. Equal fingerprints mean equal train/val/test sets."""
    content = json.dumps([[p.relative_to(folder).as_posix() for p in files], list(labels), list(split_args)])
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def _global_seed() -> int:
    """The run's seed (``seed_everything``, which Lightning exports as PL_GLOBAL_SEED), else 0."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def stratified_subset(indices: np.ndarray, labels: np.ndarray, size: int | float, seed: int) -> np.ndarray:
    """A stratified, seeded subset of ``indices``: ``size`` images, or that fraction of them."""
    count = round(size * len(indices)) if isinstance(size, float) else size
    num_classes = len(np.unique(labels[indices]))
    if not num_classes <= count <= len(indices):
        raise ConfigError(
            f"data.train_size={size} gives {count} images; it must be between {num_classes} (one per "
            f"class) and the {len(indices)} training images"
        )
    if count == len(indices):
        return indices
    subset, _ = train_test_split(indices, train_size=count, stratify=labels[indices], random_state=seed)
    return np.sort(subset)


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
        train_size: Train on a stratified, seeded subset of the training split: a number of images
            (int) or a fraction of them (float); null uses all. Validation and test sets are unchanged.
        allow_split_change: Evaluate a checkpoint even if the data's split differs from the one it
            was trained with (by default that is refused: test images might have been trained on).
        skip_unreadable: Leave out images that cannot be decoded, with a warning listing them,
            instead of stopping with an error that lists them.
        predict_root: Folder of images (searched recursively) for ``predict``; null predicts the
            test split.
        augment: Random flips and 90-degree rotations of training images, on the device (never
            in validation, test or predict).
        decode_cache: Decode the images once into a uint8 array (a hidden ``.npy`` file in the
            dataset folder) and memory-map it in later runs; false decodes every image every epoch.
        batch_size: Images per batch (per device).
        num_workers: DataLoader worker processes (they decode images when there is no cache).
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
        train_size: int | float | None = None,
        allow_split_change: bool = False,
        skip_unreadable: bool = False,
        predict_root: str | Path | None = None,
        augment: bool = False,
        decode_cache: bool = True,
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
        self.train_size = train_size
        self.allow_split_change = allow_split_change
        self.skip_unreadable = skip_unreadable
        self.predict_root = Path(predict_root) if predict_root is not None else None
        self.augment = augment
        self.decode_cache = decode_cache
        self.batch_size = batch_size
        self.num_workers = num_workers
        self._image_folder: Path | None = None
        self._listing: tuple[list[Path], list[int], list[str]] | None = None
        self._readable_listing: tuple[list[Path], list[int], np.ndarray | None, np.ndarray] | None = None
        self._fingerprint: str | None = None

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
            raise DataNotFoundError(
                f"{self.archive_path} extracted into {self.root}, but no <class>/<image> folders "
                "were found there; check data.url"
            )
        raise DataNotFoundError(
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
    def class_names(self) -> list[str] | None:
        """Class names in label order: the dataset's class folders, alphabetically.

        None when only predicting new images and ``root`` holds no dataset: a checkpoint knows its
        classes, so prediction needs no labelled data.
        """
        return self._list()[2] if self._has_labelled_data() else None

    def _has_labelled_data(self) -> bool:
        """False only when predicting new images with no dataset at ``root`` (none needed then)."""
        provides_data = self.download or self.sample_images_per_class > 0
        return self.predict_root is None or provides_data or find_image_folder(self.root) is not None

    def prepare_data(self) -> None:
        """Download, extract or generate the data, and decode it into the cache, once (Lightning
        calls this on one process per machine)."""
        if self._has_labelled_data():
            self._readable()

    def _readable(self) -> tuple[list[Path], list[int], np.ndarray | None, np.ndarray]:
        """The readable images' files and labels, the decode cache (None without one) and their rows in it.

        Unreadable images are an error naming them, or, with ``skip_unreadable``, left out with a
        warning that lists them. The cache records which images failed, so this costs nothing after
        the first run; without a cache, only ``skip_unreadable`` pays for a decoding pass.
        """
        if self._readable_listing is None:
            files, labels, _ = self._list()
            loaded = load_cache(files, self.image_folder(), self.num_workers) if self.decode_cache else None
            images, status = loaded if loaded is not None else (None, None)
            if status is None and self.skip_unreadable:
                status = decode_all(files, first_image_size(files), self.num_workers)
            keep = np.arange(len(files))
            if status is not None and (status == UNREADABLE).any():
                bad = [str(files[i]) for i in np.flatnonzero(status == UNREADABLE)]
                listing = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
                if not self.skip_unreadable:
                    raise UnreadableImageError(
                        f"{len(bad)} image(s) cannot be read: {listing}. Replace or delete them, or set "
                        "data.skip_unreadable=true to leave them out"
                    )
                warnings.warn(f"leaving out {len(bad)} unreadable image(s): {listing}", stacklevel=2)
                keep = np.flatnonzero(status != UNREADABLE)
            self._readable_listing = ([files[i] for i in keep], [labels[i] for i in keep], images, keep)
        return self._readable_listing

    def split_fingerprint(self) -> str:
        """Identifies the train/val/test split; saved in checkpoints and checked when they are restored."""
        if self._fingerprint is None:  # computed once: every checkpoint save asks for it
            files, labels, _, _ = self._readable()
            split_args = (self.val_fraction, self.test_fraction, self.split_seed)
            self._fingerprint = split_fingerprint(files, labels, self.image_folder(), *split_args)
        return self._fingerprint

    def setup(self, stage: str) -> None:
        """Build the subsets from the seeded stratified split (and the predict set, if any)."""
        if stage == "predict" and self.predict_root is not None:
            files = image_files(self.predict_root, recursive=True)
            if not files:
                raise DataNotFoundError(f"data.predict_root={str(self.predict_root)!r} holds no images")
            self.predict_dataset = PredictionDataset(files)
            return
        files, labels, images, rows = self._readable()
        train, val, test = stratified_split(labels, self.val_fraction, self.test_fraction, self.split_seed)
        if self.train_size is not None:
            train = stratified_subset(train, np.asarray(labels), self.train_size, self.split_seed)
        size = first_image_size(files) if images is None else None

        def subset(indices: np.ndarray) -> Dataset:
            subset_files, subset_labels = [files[i] for i in indices], [labels[i] for i in indices]
            if images is None:
                return ImageFileDataset(subset_files, subset_labels, size=size)
            return CachedImageDataset(images, rows[indices], subset_files, subset_labels)

        self.train_dataset, self.val_dataset, self.test_dataset = subset(train), subset(val), subset(test)
        self.predict_dataset = PredictionDataset(self.test_dataset.files)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training batches on the device, still as uint8 at native size."""
        if self.augment and self.trainer is not None and self.trainer.training:
            images, labels = batch
            # drawn from (seed, rank, step) alone, so a resumed run augments as an uninterrupted one
            seed = hash((_global_seed(), self.trainer.global_rank, self.trainer.global_step)) % 2**63
            return random_dihedral(images, torch.Generator(images.device).manual_seed(seed)), labels
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"split_fingerprint": self.split_fingerprint()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse to evaluate or resume on another split than the checkpoint was trained with."""
        saved = state_dict.get("split_fingerprint")
        if saved is None or self.allow_split_change or (self.trainer is not None and self.trainer.predicting):
            return
        current = self.split_fingerprint()
        if saved != current:
            raise SplitMismatchError(
                f"the checkpoint was trained on split {saved} but data.root={str(self.root)!r} with "
                f"val_fraction={self.val_fraction}, test_fraction={self.test_fraction}, "
                f"split_seed={self.split_seed} gives split {current}: its test images may have been "
                "trained on. Use the data and split options of the training run, or set "
                "data.allow_split_change=true to evaluate anyway"
            )

    def _loader(self, dataset: Dataset, **kwargs: Any) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, sampler=EpochSeededSampler(self.train_dataset, _global_seed()))

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_dataset, collate_fn=collate_predictions)
