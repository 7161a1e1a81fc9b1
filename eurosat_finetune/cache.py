"""Decode a dataset's images once into a uint8 array on disk that later runs memory-map.

EuroSAT RGB decodes to 27,000 x 3 x 64 x 64 bytes (330 MB). Decoding the JPEGs again every epoch
costs more CPU than a fine-tune on a fast GPU can wait for; reading the array costs almost nothing.
The cache is a hidden file inside the dataset folder, next to the class folders. Its name is keyed by
the file list with sizes and modification times (a changed dataset gets a new cache), and it is
written under a temporary name and renamed only when complete, so no reader sees a half-written cache.
"""

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from eurosat_finetune.images import read_image, read_image_at

log = logging.getLogger(__name__)


def cache_key(files: Sequence[Path], folder: Path) -> str:
    """Hash of the relative paths, sizes and modification times of ``files``."""
    entries = []
    for path in files:
        stat = path.stat()
        entries.append([path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


CACHE_PREFIX = ".decoded-uint8-"


def cache_path(files: Sequence[Path], folder: Path) -> Path:
    """Where the cache of ``files`` (all under ``folder``) lives: in ``folder``, beside the classes."""
    return folder / f"{CACHE_PREFIX}{cache_key(files, folder)}.npy"


class _DecodeAtSize(Dataset):
    def __init__(self, files: Sequence[Path], size: tuple[int, int]) -> None:
        self.files = list(files)
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, bool]:
        return read_image_at(self.files[index], self.size)


def build_cache(files: Sequence[Path], path: Path, num_workers: int = 0) -> None:
    """Decode ``files`` into the ``.npy`` array ``path`` (N x 3 x H x W uint8), atomically.

    H x W is the first image's size; images of another size are resized to it, with a warning.
    """
    size = tuple(read_image(files[0]).shape[-2:])
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), 3, *size))
        loader = DataLoader(_DecodeAtSize(files, size), batch_size=256, num_workers=num_workers)
        start, resized = 0, 0
        for images, was_resized in loader:
            array[start : start + len(images)] = images.numpy()
            start += len(images)
            resized += int(was_resized.sum())
        array.flush()
        del array
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if resized:
        log.warning("%d of %d images were not %dx%d and were resized to it", resized, len(files), *size)


def load_cache(files: Sequence[Path], folder: Path, num_workers: int = 0) -> np.ndarray | None:
    """The decoded images of ``files`` as a read-only memory map, built first if needed.

    Returns None (and the caller decodes per image) if the cache cannot be written in ``folder``.
    """
    path = cache_path(files, folder)
    if not path.is_file():
        log.info("Decoding %d images once into %s", len(files), path)
        try:
            build_cache(files, path, num_workers)
        except PermissionError as err:
            log.warning("Cannot write the decode cache %s (%s); decoding images every epoch instead", path, err)
            return None
        for stale in folder.glob(f"{CACHE_PREFIX}*.npy"):
            if stale != path:
                stale.unlink(missing_ok=True)  # a cache of an earlier version of this dataset
    return np.load(path, mmap_mode="r")
