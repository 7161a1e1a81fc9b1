"""What a run's data was, described by the data layer itself (for the model card and other reports)."""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eurosat_finetune.data.bands import STATISTICS_FOLDERS
from eurosat_finetune.data.source import DATASET_FOLDERS
from eurosat_finetune.data.synthetic import is_synthetic_sample

if TYPE_CHECKING:
    from eurosat_finetune.data.datamodule import EuroSATDataModule


@dataclass(frozen=True)
class DatasetDescription:
    """The dataset, its split and how its batches were made."""

    name: str  # "EuroSAT RGB", "EuroSAT MS", "a synthetic sample in EuroSAT layout" or "the images in <folder>"
    is_eurosat: bool  # the published EuroSAT RGB or MS (so Sentinel-2 patches at 10 m per pixel)
    folder: Path
    image_size: tuple[int, int]  # (height, width) the images were trained at
    split_sizes: dict[str, int]  # images per split: train, val, test
    split_recipe: str  # how the split was made
    split_fingerprint: str
    batch_size: int
    augment: bool
    bands: list[str] | None = None  # the bands trained on, by name; None for RGB images as stored


def dataset_name(folder: Path) -> tuple[str, bool]:
    """How to name the dataset in ``folder``, and whether it is EuroSAT RGB (found in a published layout)."""
    if is_synthetic_sample(folder):
        return "a synthetic sample in EuroSAT layout (not real data)", False
    if folder.name in DATASET_FOLDERS:
        return "EuroSAT RGB", True
    if folder.name in STATISTICS_FOLDERS:
        return "EuroSAT MS", True
    return f"the images in {folder}", False


def split_recipe(
    split_files: dict[str, str] | None,
    fractions: tuple[float, float],
    split_seed: int,
    train_size: int | float | None,
) -> str:
    """The split options in words, e.g. "a stratified split (val_fraction 0.1, ...)"."""
    if split_files is not None:
        how = f"the published split lists {split_files}"
    else:
        how = f"a stratified split (val_fraction {fractions[0]}, test_fraction {fractions[1]}, split_seed {split_seed})"
    return how + (f"; trained on a subset of {train_size}" if train_size is not None else "")


def describe(data: "EuroSATDataModule") -> DatasetDescription:
    """The data of ``data``'s run (after its ``setup("fit")`` or ``setup("test")``)."""
    name, is_eurosat = dataset_name(data.listing.folder)
    subsets = {"train": data.train_dataset, "val": data.val_dataset, "test": data.test_dataset}
    fractions = (data.val_fraction, data.test_fraction)
    return DatasetDescription(
        name=name,
        is_eurosat=is_eurosat,
        folder=data.listing.folder,
        image_size=data.readable.size,
        split_sizes={split: len(subset) for split, subset in subsets.items()},
        split_recipe=split_recipe(data.hparams.split_files, fractions, data.split_seed, data.train_size),
        split_fingerprint=data.split_fingerprint,
        batch_size=data.batch_size,
        augment=data.augment,
        bands=data.band_names,
    )
