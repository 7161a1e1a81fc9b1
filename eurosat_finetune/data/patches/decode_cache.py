"""Decode a dataset's images once into an array on disk that later runs memory-map.

EuroSAT RGB decodes to 27,000 x 3 x 64 x 64 bytes of uint8 (330 MB); EuroSAT MS to 27,000 x 13 x 64 x 64
uint16 (2.9 GB), every band, whichever are trained on. Decoding the JPEGs again every epoch
costs more CPU than a fine-tune on a fast GPU can wait for; reading the array costs almost nothing.
The cache is a hidden file inside the dataset folder, next to the class folders; if that folder is
read-only (datasets on clusters often are), in a per-user cache folder; or where ``data.cache.dir``
says. Its name is keyed by the file list with sizes and modification times (a changed dataset gets a
new cache), and it is written under a temporary name and renamed only when complete, so no reader
sees a half-written cache.
One process builds it while any others wait (:mod:`.made_once`), so the temporary names can be fixed: a
build killed half way leaves a file that the next build simply overwrites.
"""

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from eurosat_finetune.data.bands import EUROSAT_MS_BANDS
from eurosat_finetune.data.images import UNREADABLE_ERRORS, read_image, read_image_at
from eurosat_finetune.data.multispectral import read_bands, read_bands_at
from eurosat_finetune.errors import CacheError, OutputError, UnreadableImageError, UserError, first_line
from eurosat_finetune.tools.made_once import made_once
from eurosat_finetune.tools.progress import progress_bar

log = logging.getLogger(__name__)


def cache_key(files: Sequence[Path], folder: Path) -> str:
    """Hash of the relative paths, sizes and modification times of ``files``."""
    entries = []
    for path in files:
        stat = path.stat()
        entries.append([path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


CACHE_PREFIX = ".decoded-"
LOCK_NAME = ".decode-cache.lock"


def cache_name(files: Sequence[Path], folder: Path, multispectral: bool = False) -> str:
    """The cache file's name for ``files`` (all under ``folder``)."""
    return f"{CACHE_PREFIX}{'uint16' if multispectral else 'uint8'}-{cache_key(files, folder)}.npy"


@dataclass(frozen=True)
class DecodeCacheOptions:
    """Whether and where the images are decoded once into a cache (``data.cache``).

    Args:
        enabled: Decode the images once into an array (a hidden ``.npy`` file) and memory-map it in
            later runs; false decodes every image every epoch.
        dir: Folder for the decode cache; null puts it beside the images when that folder is writable,
            else in ``$XDG_CACHE_HOME/eurosat-finetune`` (``~/.cache/eurosat-finetune``).
    """

    enabled: bool = True
    dir: str | Path | None = None

    @property
    def folder(self) -> Path | None:
        return Path(self.dir) if self.dir is not None else None


def user_cache_dir() -> Path:
    """The per-user cache folder, where torch and Hugging Face keep theirs too:
    ``$XDG_CACHE_HOME/eurosat-finetune``, by default ``~/.cache/eurosat-finetune``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "eurosat-finetune"


def writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (made if missing). Tried rather than read from the
    permission bits, which say nothing about read-only mounts and too little about root."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def cache_folder(dataset_folder: Path, cache_dir: Path | None) -> Path | None:
    """Where to build the cache: ``cache_dir`` if given, else beside the images if that folder is
    writable, else the per-user cache folder; None if none of them can be written."""
    if cache_dir is not None:
        if not writable(cache_dir):
            raise OutputError(
                f"cannot write the decode cache to data.cache.dir={str(cache_dir)!r}; give a writable "
                "folder (or leave it unset), or set data.cache.enabled=false to decode images every epoch"
            )
        return cache_dir
    if writable(dataset_folder):
        return dataset_folder
    user_folder = user_cache_dir()
    if writable(user_folder):
        message = "%s is read-only; the decode cache goes to %s (data.cache.dir sets another)"
        log.info(message, dataset_folder, user_folder)
        return user_folder
    return None


# Per-image outcome of decoding, stored beside the cache.
DECODED, RESIZED, UNREADABLE = 0, 1, 2


def pixels_at(path: Path, size: tuple[int, int], multispectral: bool) -> tuple[torch.Tensor, bool]:
    """The image as stored (RGB uint8, or all 13 bands uint16), at ``size``; and whether it was resized."""
    return read_bands_at(path, size) if multispectral else read_image_at(path, size)


class DecodeAtSize(Dataset):
    """Decode images to ``(C, *size)`` (resizing others); an unreadable one gives zeros and the status
    UNREADABLE instead of an error, so one bad file does not stop the whole pass (an image of another
    kind than the dataset's, such as a GeoTIFF of another band count, does stop it, named)."""

    def __init__(self, files: Sequence[Path], size: tuple[int, int], multispectral: bool = False) -> None:
        self.files = list(files)
        self.size = size
        self.multispectral = multispectral

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        try:
            image, resized = pixels_at(self.files[index], self.size, self.multispectral)
        except UserError:
            raise
        except UNREADABLE_ERRORS:
            channels, dtype = (len(EUROSAT_MS_BANDS), torch.uint16) if self.multispectral else (3, torch.uint8)
            return torch.zeros(channels, *self.size, dtype=dtype), UNREADABLE
        return image, RESIZED if resized else DECODED


def first_image_size(files: Sequence[Path], multispectral: bool = False) -> tuple[int, int]:
    """Height and width of the first readable image (the size every image is batched at)."""
    for path in files:
        try:
            return tuple((read_bands(path) if multispectral else read_image(path)).shape[-2:])
        except UserError:
            raise
        except UNREADABLE_ERRORS:
            continue
    raise UnreadableImageError(f"none of the {len(files)} images under {files[0].parent.parent} can be read")


def decode_all(
    files: Sequence[Path],
    size: tuple[int, int],
    num_workers: int = 0,
    out: np.ndarray | None = None,
    multispectral: bool = False,
) -> np.ndarray:
    """Decode every file (into ``out`` if given) and return the per-image status array."""
    loader = DataLoader(DecodeAtSize(files, size, multispectral), batch_size=256, num_workers=num_workers)
    status, start = np.empty(len(files), np.uint8), 0
    with progress_bar(len(files), f"Decoding {len(files):,} images", " images") as bar:
        for images, outcome in loader:
            if out is not None:
                out[start : start + len(images)] = images.numpy()
            status[start : start + len(images)] = outcome.numpy()
            start += len(images)
            bar.update(len(images))
    resized = int((status == RESIZED).sum())
    if resized:
        log.warning("%d of %d images were not %dx%d and were resized to it", resized, len(files), *size)
    return status


def build_cache(files: Sequence[Path], path: Path, num_workers: int = 0, multispectral: bool = False) -> None:
    """Decode ``files`` into the ``.npy`` array ``path`` (N x 3 x H x W uint8, or N x 13 x H x W uint16
    when ``multispectral``) and their statuses into ``<path>.status.npy``, atomically: the array is
    renamed into place last, when all is written.

    H x W is the first image's size; images of another size are resized to it, with a warning.
    """
    size = first_image_size(files, multispectral)
    channels, dtype = (len(EUROSAT_MS_BANDS), np.uint16) if multispectral else (3, np.uint8)
    shape = (len(files), channels, *size)
    tmp = path.with_name(f"{path.name}.tmp")
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        status = decode_all(files, size, num_workers, out=array, multispectral=multispectral)
        array.flush()
        del array
        _save_atomically(status_path(path), status)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def status_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".npy") + ".status.npy")


def _save_atomically(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f"{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_cache(
    files: Sequence[Path],
    folder: Path,
    num_workers: int = 0,
    cache_dir: Path | None = None,
    multispectral: bool = False,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The decoded images of ``files`` (all under ``folder``) as a read-only memory map, and each
    one's decode status (DECODED, RESIZED or UNREADABLE), built first (by one process) if needed.

    An existing cache is used wherever it is (``cache_dir``, else beside the images or in the
    per-user folder, so a cache built beside read-only data by whoever could write there serves
    everyone). Returns None, with a warning that says why, if no cache can be written: the caller
    then decodes the images every epoch.
    """
    name = cache_name(files, folder, multispectral)
    places = [cache_dir] if cache_dir is not None else [folder, user_cache_dir()]
    refusal = None
    for place in places:
        if is_complete(place / name):
            damage = damage_of(place / name, len(files))
            if damage is None:
                return open_cache(place / name)
            refusal = refusal or refusal_if_read_only(place / name, damage)  # else built again below
    if refusal is not None:  # no good copy anywhere, and the damaged one cannot be replaced
        raise refusal
    place = cache_folder(folder, cache_dir)
    if place is None:
        log.warning(
            "Cannot write the decode cache beside the images in %s nor in %s; decoding every image "
            "every epoch instead (slower). Set data.cache.dir to a writable folder to cache them",
            folder,
            user_cache_dir(),
        )
        return None
    path = place / name

    def find() -> Path | None:
        return path if is_complete(path) and damage_of(path, len(files)) is None else None

    def make() -> Path:
        if is_complete(path):  # but damaged (find said so); the build replaces both files
            log.warning("The decode cache %s is damaged (%s); building it again", path, damage_of(path, len(files)))
        log.info("Decoding %d images once into %s", len(files), path)
        build_cache(files, path, num_workers, multispectral)
        if place == folder:  # the dataset's own folder holds only its own caches: drop earlier versions
            for stale in folder.glob(f"{CACHE_PREFIX}*.npy"):
                if stale not in (path, status_path(path)):
                    stale.unlink(missing_ok=True)
        return path

    try:
        made_once(place / LOCK_NAME, find, make, f"decoding {len(files)} images into {path}")
    except OSError as err:
        if isinstance(err, UserError):
            raise
        # e.g. the disk filled up while writing: say so, and go on without a cache
        log.warning("Cannot write the decode cache %s (%s); decoding every image every epoch instead", path, err)
        return None
    return open_cache(path)


def is_complete(path: Path) -> bool:
    return path.is_file() and status_path(path).is_file()  # (the status file is written first)


def damage_of(path: Path, count: int) -> str | None:
    """What is wrong with the cache ``path`` of ``count`` images, None if nothing: a copy cut short (a
    full disk) or a file overwritten leaves a header that cannot be read, fewer bytes than the header
    promises, or a status array of another length."""
    status = status_path(path)
    try:
        with path.open("rb") as file:
            version = np.lib.format.read_magic(file)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = header(file)
            expected = file.tell() + int(np.prod(shape)) * dtype.itemsize
    except (OSError, ValueError, EOFError) as err:  # numpy says ValueError for a bad header
        return f"{path.name}: {first_line(err)}"
    if shape[:1] != (count,):
        return f"{path.name} holds {shape[0] if shape else 0:,} images, not {count:,}"
    if path.stat().st_size != expected:
        return f"{path.name} has {path.stat().st_size:,} bytes where its header promises {expected:,}"
    try:
        statuses = np.load(status)
    except (OSError, ValueError, EOFError) as err:  # "Failed to read all data" when cut short, EOFError when empty
        return f"{status.name}: {first_line(err)}"
    if statuses.shape != (count,):
        return f"{status.name} holds {statuses.size:,} entries for {count:,} images"
    return None


def refusal_if_read_only(path: Path, damage: str) -> CacheError | None:
    """For a damaged cache that cannot be built again where it lies (read-only data), the one-line error
    that names the files to delete."""
    if writable(path.parent):
        return None
    return CacheError(
        f"the decode cache {path} is damaged ({damage}) and its folder is read-only: delete it and "
        f"{status_path(path).name} there, or set data.cache.dir to a writable folder"
    )


def open_cache(path: Path) -> tuple[np.ndarray, np.ndarray]:
    return np.load(path, mmap_mode="r"), np.load(status_path(path))
