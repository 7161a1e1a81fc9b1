"""A folder of ``<class>/<image>`` files as PyTorch datasets: listed, verified, served as uint8.

Follow one image: :func:`list_images` finds it and its label; :func:`readable_images` checks it can
be decoded (the decode cache records that) and gives its row in the cache; :class:`LabelledImages`
serves it as a uint8 ``(3, H, W)`` tensor from that row, or decodes the file when there is no cache.
Everything after that (augmentation, resizing, normalising) happens on the device; see
:mod:`eurosat_finetune.pixels`.
"""

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from eurosat_finetune.data.images import IMAGE_SUFFIXES, UNREADABLE_ERRORS, image_files, served
from eurosat_finetune.data.multispectral import is_multispectral
from eurosat_finetune.data.patches.decode_cache import (
    UNREADABLE,
    DecodeCacheOptions,
    decode_all,
    first_image_size,
    load_cache,
    pixels_at,
)
from eurosat_finetune.errors import DataNotFoundError, UnreadableImageError, UserError


@dataclass(frozen=True)
class ImageListing:
    """The images of a dataset folder, sorted, with their labels (indices into ``class_names``)."""

    folder: Path
    files: list[Path]
    labels: list[int]
    class_names: list[str]
    multispectral: bool = False  # 13-band GeoTIFFs as in EuroSAT MS (see :func:`is_multispectral`), else RGB


def list_images(folder: Path) -> ImageListing:
    """List ``folder/<class>/<image>`` files; classes are the sub-folders in alphabetical order (as
    torchvision's ImageFolder orders them)."""
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
    return ImageListing(folder, files, labels, class_names, is_multispectral(files))


@dataclass(frozen=True)
class ReadableImages:
    """The images that decode, with where their pixels come from."""

    files: list[Path]
    labels: list[int]
    size: tuple[int, int]  # (height, width) every image is served at
    cache: np.ndarray | None  # the decode cache (memory-mapped), None to decode files instead
    rows: np.ndarray  # each image's row in the cache
    multispectral: bool = False  # 13-band uint16 GeoTIFFs (EuroSAT MS), else RGB uint8


def readable_images(
    listing: ImageListing, decode_cache: DecodeCacheOptions, skip_unreadable: bool, num_workers: int
) -> ReadableImages:
    """Decode ``listing`` into the cache (built once, see :func:`load_cache`) and check every image.

    Unreadable images are an error naming them, or, with ``skip_unreadable``, left out with a warning
    that lists them. The cache records which images failed, so this costs nothing after the first
    run; without a cache, only ``skip_unreadable`` pays for a decoding pass.
    """
    files, multispectral, cached = listing.files, listing.multispectral, decode_cache.enabled
    loaded = load_cache(files, listing.folder, num_workers, decode_cache.folder, multispectral) if cached else None
    cache, status = loaded if loaded is not None else (None, None)
    size = tuple(cache.shape[-2:]) if cache is not None else first_image_size(files, multispectral)
    if status is None and skip_unreadable:
        status = decode_all(files, size, num_workers, multispectral=multispectral)
    keep = np.arange(len(files))
    if status is not None and (status == UNREADABLE).any():
        bad = [str(files[i]) for i in np.flatnonzero(status == UNREADABLE)]
        named = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        if not skip_unreadable:
            raise UnreadableImageError(
                f"{len(bad)} image(s) cannot be read: {named}. Replace or delete them, or set "
                "data.skip_unreadable=true to leave them out"
            )
        warnings.warn(f"leaving out {len(bad)} unreadable image(s): {named}", stacklevel=2)
        keep = np.flatnonzero(status != UNREADABLE)
    labels = [listing.labels[i] for i in keep]
    return ReadableImages([files[i] for i in keep], labels, size, cache, keep, multispectral)


class LabelledImages(Dataset):
    """Images ``indices`` of ``images`` as ``(pixels, label)``, from the decode cache if there is one,
    else decoded from their files (and resized to the common size if need be). Pixels are a uint8
    ``(3, H, W)`` tensor for RGB; for multispectral images the ``bands`` (indices into the stored
    bands) as an int32 ``(C, H, W)`` tensor of the stored uint16 values (PyTorch computes little in uint16)."""

    def __init__(self, images: ReadableImages, indices: Sequence[int], bands: Sequence[int] | None = None) -> None:
        self.files = [images.files[i] for i in indices]
        self.labels = [images.labels[i] for i in indices]
        self.size = images.size
        self.cache = images.cache
        self.rows = images.rows[np.asarray(indices, dtype=np.int64)]
        self.multispectral = images.multispectral
        self.bands = list(bands) if bands is not None else None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.pixels(index), self.labels[index]

    def pixels(self, index: int) -> torch.Tensor:
        if self.cache is not None:
            stored = self.cache[self.rows[index]]
            return served(stored, self.bands)
        try:
            return served(pixels_at(self.files[index], self.size, self.multispectral)[0].numpy(), self.bands)
        except UserError:
            raise
        except UNREADABLE_ERRORS as err:
            raise UnreadableImageError(
                f"cannot read {self.files[index]} ({err}); replace or delete it, or set data.skip_unreadable=true"
            ) from None
