"""The published EuroSAT datasets, recognised by what a folder holds rather than by its name: EuroSAT's
ten classes with exactly its 27,000 files (``<Class>/<Class>_<n>.jpg`` for RGB, ``.tif`` for MS) of
64 x 64 pixels, MS with 13 bands. A copy under any name is EuroSAT; a subset, a synthetic sample or
other images in EuroSAT's layout are not (they get their own band statistics and no assumed ground
resolution)."""

from typing import Literal

from eurosat_finetune.data.patches.datasets import ImageListing
from eurosat_finetune.data.patches.decode_cache import first_image_size

EUROSAT_CLASS_SIZES = {
    "AnnualCrop": 3000,
    "Forest": 3000,
    "HerbaceousVegetation": 3000,
    "Highway": 2500,
    "Industrial": 2500,
    "Pasture": 2000,
    "PermanentCrop": 2500,
    "Residential": 3000,
    "River": 2500,
    "SeaLake": 3000,
}
"""Images per class in both EuroSAT RGB and EuroSAT MS, numbered from 1 (``AnnualCrop_1`` ... ``_3000``)."""

EUROSAT_CLASSES = tuple(EUROSAT_CLASS_SIZES)
"""EuroSAT's ten class names, in the order of its class folders (and of the labels trained on them)."""

EUROSAT_IMAGE_SIZE = (64, 64)

PublishedDataset = Literal["EuroSAT RGB", "EuroSAT MS"]


def published_dataset(listing: ImageListing) -> PublishedDataset | None:
    """Which published EuroSAT ``listing`` is, if it is one: its class names, file names, image size and
    (through ``listing.multispectral``) band count decide, not its folder's name."""
    if listing.class_names != list(EUROSAT_CLASSES):
        return None
    if len(listing.files) != sum(EUROSAT_CLASS_SIZES.values()):
        return None
    suffix = ".tif" if listing.multispectral else ".jpg"
    expected = {f"{name}/{name}_{n}{suffix}" for name, size in EUROSAT_CLASS_SIZES.items() for n in range(1, size + 1)}
    # nor a synthetic sample (data.synthetic_images_per_class): its classes are of one size, EuroSAT's are not
    if {path.relative_to(listing.folder).as_posix() for path in listing.files} != expected:
        return None
    if first_image_size(listing.files, listing.multispectral) != EUROSAT_IMAGE_SIZE:
        return None
    return "EuroSAT MS" if listing.multispectral else "EuroSAT RGB"
