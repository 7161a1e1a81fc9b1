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


def stratified_split(
    labels: Sequence[int],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    class_names: Sequence[str] | None = None,
) -> Split:
    """Split indices ``0..len(labels)-1`` into stratified train/val/test index arrays.

    A pure function of its arguments (the caller passes labels of a sorted file list): the same
    files, fractions and seed give the same split on every machine, rank and subcommand, whatever
    the global RNG state. Sizes are ``round(fraction * n)`` for val and test; train takes the rest.
    Data too small for the fractions is a one-line error naming the class or the splits short of images
    (``class_names`` name the labels there).
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(
            f"data.split.val_fraction={val_fraction} and data.split.test_fraction={test_fraction} must be in "
            "[0, 1) and sum to less than 1"
        )
    labels = np.asarray(labels)
    fractions = {"val": val_fraction, "test": test_fraction}
    sizes = {split: round(fraction * len(labels)) for split, fraction in fractions.items()}
    if any(sizes.values()):
        room_for_every_class(labels, sizes, fractions, class_names)

    def split_off(pool: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        if size == 0:
            return pool, pool[:0]
        rest, taken = train_test_split(pool, test_size=size, stratify=labels[pool], random_state=seed)
        return np.sort(rest), np.sort(taken)

    rest, test = split_off(np.arange(len(labels)), sizes["test"])
    if sizes["val"] and sizes["test"]:
        left_after_test(labels, rest, test_fraction, class_names)
    train, val = split_off(rest, sizes["val"])
    return Split(train, val, test)


def name_of(label: int, class_names: Sequence[str] | None) -> str:
    return class_names[label] if class_names is not None else f"number {label}"


def images(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"


SPLIT_WORDS = {"val": "validation", "test": "test"}


def room_for_every_class(
    labels: np.ndarray, sizes: dict[str, int], fractions: dict[str, float], class_names: Sequence[str] | None
) -> None:
    """A stratified split shares every class out to every split: a class with fewer images than the splits,
    or a split with fewer images than the classes, is refused in one line (scikit-learn's refusal, a traceback,
    names neither the class nor the option)."""
    present, counts = np.unique(labels, return_counts=True)
    splits = ["train", *(split for split, size in sizes.items() if size)]
    smallest, fewest = name_of(int(present[counts.argmin()]), class_names), int(counts.min())
    if fewest < len(splits):
        options = " or ".join(f"data.split.{split}_fraction" for split in splits[1:])
        raise ConfigError(
            f"class {smallest} has {images(fewest)}, fewer than the {len(splits)} splits ({', '.join(splits)}) "
            f"a stratified split shares every class out to: add images of {smallest}, leave its folder out of "
            f"data.root (fewer classes), or set {options} to 0"
        )
    sizes = {**sizes, "train": len(labels) - sum(sizes.values())}
    short = [split for split in (*splits[1:], "train") if sizes[split] < len(present)]
    if not short:
        return
    taking = " and ".join(f"data.split.{split}_fraction={fractions[split]}" for split in splits[1:])
    said = " and ".join(
        f"{taking} leave {sizes[split]} to train on"
        if split == "train"
        else f"data.split.{split}_fraction={fractions[split]} gives {sizes[split]} to {SPLIT_WORDS[split]}"
        for split in short
    )
    if "train" not in short:
        change = "a larger " + " and ".join(f"data.split.{split}_fraction" for split in short)
    else:
        change = "smaller fractions" if short == ["train"] else "other fractions"
    raise ConfigError(
        f"of {len(labels)} images, {said}, fewer than the {len(present)} classes a stratified split shares out "
        f"to every split (the smallest class, {smallest}, has {images(fewest)}): use fewer classes, more "
        f"images, or {change}"
    )


def left_after_test(
    labels: np.ndarray, rest: np.ndarray, test_fraction: float, class_names: Sequence[str] | None
) -> None:
    """After the test split, every class needs 2 images left to share out between train and val."""
    total = np.bincount(labels)
    left = np.bincount(labels[rest], minlength=len(total))
    short = np.flatnonzero((total > 0) & (left < 2))
    if short.size:
        label = int(short[0])
        name = name_of(label, class_names)
        raise ConfigError(
            f"class {name} has {images(total[label])}, and data.split.test_fraction={test_fraction} puts "
            f"{total[label] - left[label]} of them in the test split, leaving too few to share out between train "
            f"and val: add images of {name}, or use a smaller data.split.test_fraction"
        )


def stratified_subset(
    indices: np.ndarray, labels: Sequence[int], size: int | float, seed: int, class_names: Sequence[str] | None = None
) -> np.ndarray:
    """A stratified, seeded subset of ``indices``: ``size`` images, or that fraction of them. It keeps some
    images of each class and leaves some, so each class needs 2; ``class_names`` name the labels."""
    labels = np.asarray(labels)
    count = round(size * len(indices)) if isinstance(size, float) else size
    if count == len(indices):
        return indices
    present, counts = np.unique(labels[indices], return_counts=True)
    if len(present) <= count < len(indices) and counts.min() < 2:
        name = name_of(int(present[counts.argmin()]), class_names)
        raise ConfigError(
            f"data.split.train_size={size}: class {name} has 1 training image, and a stratified subset keeps some "
            f"images of each class and leaves some; train on all images (data.split.train_size null) or add images "
            f"of {name}"
        )
    if not len(present) <= count <= len(indices) - len(present):
        raise ConfigError(
            f"data.split.train_size={size} gives {count} images; it must be between {len(present)} (one per class) and "
            f"{len(indices) - len(present)} (leaving one per class out), or all {len(indices)} training images"
        )
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
