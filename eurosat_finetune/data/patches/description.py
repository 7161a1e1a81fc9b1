"""What a run's data was, described by the data layer itself (for the model card and other reports)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from eurosat_finetune.data.loaders import LoaderOptions
from eurosat_finetune.data.patches.datasets import ImageListing, LabelledImages, ReadableImages
from eurosat_finetune.data.patches.published import PublishedDataset
from eurosat_finetune.data.patches.split_choice import SplitChoice
from eurosat_finetune.data.patches.synthetic import is_synthetic_sample


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


def dataset_name(published: PublishedDataset | None, folder: Path, synthetic: bool) -> str:
    """How to name the dataset in ``folder``: as the published EuroSAT it is (see :mod:`.published`), else
    by what it is."""
    if published is not None:
        return published
    return "a synthetic sample in EuroSAT layout (not real data)" if synthetic else f"the images in {folder}"


class DescribedData(Protocol):
    """What :func:`describe` reads of a datamodule (the EuroSAT one, after its ``setup``)."""

    listing: ImageListing
    readable: ReadableImages
    published: PublishedDataset | None
    split_choice: SplitChoice
    split_fingerprint: str
    train_dataset: LabelledImages
    val_dataset: LabelledImages
    test_dataset: LabelledImages
    loader: LoaderOptions
    augment: bool
    band_names: list[str] | None


def describe(data: DescribedData) -> DatasetDescription:
    """The data of ``data``'s run (after its ``setup("fit")`` or ``setup("test")``)."""
    subsets = {"train": data.train_dataset, "val": data.val_dataset, "test": data.test_dataset}
    return DatasetDescription(
        name=dataset_name(data.published, data.listing.folder, is_synthetic_sample(data.listing.folder)),
        is_eurosat=data.published is not None,
        folder=data.listing.folder,
        image_size=data.readable.size,
        split_sizes={split: len(subset) for split, subset in subsets.items()},
        split_recipe=data.split_choice.in_words(),
        split_fingerprint=data.split_fingerprint,
        batch_size=data.loader.batch_size,
        augment=data.augment,
        bands=data.band_names,
    )
