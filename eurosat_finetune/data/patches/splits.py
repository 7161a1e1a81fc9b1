"""Train/val/test splits as pure functions of (files, labels, fractions, seed)."""

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sklearn.model_selection import train_test_split

from eurosat_finetune.errors import ConfigError, DataNotFoundError

SPLITS = ("train", "val", "test")


class Split(NamedTuple):
    """Index arrays into a listing, each sorted."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def stratified_split(labels: Sequence[int], val_fraction: float, test_fraction: float, seed: int) -> Split:
    """Split indices ``0..len(labels)-1`` into stratified train/val/test index arrays.

    A pure function of its arguments (the caller passes labels of a sorted file list): the same
    files, fractions and seed give the same split on every machine, rank and subcommand, whatever
    the global RNG state. Sizes are ``round(fraction * n)`` for val and test; train takes the rest.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(
            f"data.split.val_fraction={val_fraction} and data.split.test_fraction={test_fraction} must be in "
            "[0, 1) and sum to less than 1"
        )
    labels = np.asarray(labels)

    def split_off(pool: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        if size == 0:
            return pool, pool[:0]
        rest, taken = train_test_split(pool, test_size=size, stratify=labels[pool], random_state=seed)
        return np.sort(rest), np.sort(taken)

    rest, test = split_off(np.arange(len(labels)), round(test_fraction * len(labels)))
    train, val = split_off(rest, round(val_fraction * len(labels)))
    return Split(train, val, test)


def stratified_subset(indices: np.ndarray, labels: Sequence[int], size: int | float, seed: int) -> np.ndarray:
    """A stratified, seeded subset of ``indices``: ``size`` images, or that fraction of them."""
    labels = np.asarray(labels)
    count = round(size * len(indices)) if isinstance(size, float) else size
    num_classes = len(np.unique(labels[indices]))
    if not num_classes <= count <= len(indices):
        raise ConfigError(
            f"data.split.train_size={size} gives {count} images; it must be between {num_classes} (one per "
            f"class) and the {len(indices)} training images"
        )
    if count == len(indices):
        return indices
    subset, _ = train_test_split(indices, train_size=count, stratify=labels[indices], random_state=seed)
    return np.sort(subset)


def read_split_files(split_files: dict[str, str | Path]) -> dict[str, list[str]]:
    """The entries of each list file (one name per line, blank lines skipped), by split."""
    if sorted(split_files) != sorted(SPLITS):
        raise ConfigError(
            f"data.split.files has keys {sorted(split_files)}; give exactly train, val and test, each a text file "
            "with one image name per line"
        )
    lists = {}
    for split in SPLITS:
        path = Path(split_files[split])
        if not path.is_file():
            raise DataNotFoundError(f"data.split.files.{split}: no such file {path}; give a text file of image names")
        lists[split] = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return lists


def entry_key(entry: str) -> str:
    """How a list entry names an image: its path without extension, relative to the dataset folder
    (``Forest/Forest_12``), or its bare name without extension (``Forest_12``: TorchGeo's lists name
    the multispectral ``.tif`` files, which match the RGB ``.jpg`` ones)."""
    return Path(entry.replace("\\", "/")).with_suffix("").as_posix()


def listed_split(files: Sequence[Path], folder: Path, lists: dict[str, list[str]]) -> Split:
    """The split that the lists give, as index arrays into ``files``; every entry must name exactly one
    image of ``files`` and appear once in all the lists together."""
    relative = [p.relative_to(folder).with_suffix("").as_posix() for p in files]
    by_key: dict[str, list[int]] = {}
    for index, path in enumerate(relative):
        by_key.setdefault(path, []).append(index)
        by_key.setdefault(path.rsplit("/", 1)[-1], []).append(index)
    # compared by the image an entry resolves to: "Forest_1" and "Forest/Forest_1.jpg" are one image
    seen: dict[int, tuple[str, str]] = {}
    indices = {}
    for split in SPLITS:
        chosen = []
        for entry in lists[split]:
            matches = by_key.get(entry_key(entry), [])
            if not matches:
                raise ConfigError(
                    f"data.split.files.{split}: {entry} is not among the {len(files)} readable images of {folder}; "
                    "fix the list or the data.root"
                )
            if len(matches) > 1:
                raise ConfigError(
                    f"data.split.files.{split}: {entry} names {len(matches)} images; list it as <class>/<name>"
                )
            index = matches[0]
            if index in seen:
                first_split, first_entry = seen[index]
                where = f"twice in {split}" if first_split == split else f"in both {first_split} and {split}"
                named = entry if first_entry == entry else f"{relative[index]} (as {first_entry} and {entry})"
                raise ConfigError(f"data.split.files: {named} is listed {where}; each image may be listed once")
            seen[index] = (split, entry)
            chosen.append(index)
        indices[split] = np.sort(np.asarray(chosen, dtype=np.int64))
    return Split(indices["train"], indices["val"], indices["test"])


def split_fingerprint(files: Sequence[Path], labels: Sequence[int], folder: Path, recipe: object) -> str:
    """A short hash of what decides the split: file paths (relative to the dataset folder), labels, and
    the recipe (``[val_fraction, test_fraction, seed]``, or the listed split's index arrays). Equal
    fingerprints mean equal train/val/test sets."""
    relative = [p.relative_to(folder).as_posix() for p in files]
    content = json.dumps([relative, list(labels), recipe])
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def split_mismatch(saved: str, current: str, root: Path, options: str) -> str:
    """The message for a checkpoint evaluated on another split than it was trained with."""
    return (
        f"the checkpoint was trained on split {saved} but data.root={str(root)!r} with {options} gives split "
        f"{current}: its test images may have been trained on. Use the data and split options of the training "
        "run, or set data.split.allow_change=true to evaluate anyway"
    )
