"""Train/val/test splits as pure functions of (files, labels, fractions, seed)."""

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sklearn.model_selection import train_test_split

from eurosat_finetune.errors import ConfigError


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
            f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must be in "
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
            f"data.train_size={size} gives {count} images; it must be between {num_classes} (one per "
            f"class) and the {len(indices)} training images"
        )
    if count == len(indices):
        return indices
    subset, _ = train_test_split(indices, train_size=count, stratify=labels[indices], random_state=seed)
    return np.sort(subset)


def split_fingerprint(
    files: Sequence[Path], labels: Sequence[int], folder: Path, val_fraction: float, test_fraction: float, seed: int
) -> str:
    """A short hash of what decides the split: file paths (relative to the dataset folder), labels,
    fractions and seed. Equal fingerprints mean equal train/val/test sets."""
    relative = [p.relative_to(folder).as_posix() for p in files]
    content = json.dumps([relative, list(labels), [val_fraction, test_fraction, seed]])
    return hashlib.sha256(content.encode()).hexdigest()[:16]
