"""How a run splits its data: the split options as one value, which makes the split, names it (a
fingerprint checkpoints keep) and says it in words."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eurosat_finetune.data.patches.splits import (
    Split,
    listed_split,
    read_split_files,
    split_fingerprint,
    stratified_split,
    stratified_subset,
)


@dataclass
class SplitChoice:
    """Published lists (``split_files``), else seeded stratified fractions; and the training subset."""

    val_fraction: float
    test_fraction: float
    seed: int
    split_files: dict[str, str] | None
    train_size: int | float | None
    lists: dict[str, list[str]] | None = field(init=False)  # the entries of split_files, by split

    def __post_init__(self) -> None:
        # read when the options are given, so a missing list file fails before any work
        self.lists = read_split_files(self.split_files) if self.split_files is not None else None

    def split(self, files: Sequence[Path], labels: Sequence[int], folder: Path, class_names: Sequence[str]) -> Split:
        """Train/val/test indices into ``files``: from the lists, else the seeded fractions."""
        if self.lists is not None:
            return listed_split(files, folder, self.lists)
        return stratified_split(labels, self.val_fraction, self.test_fraction, self.seed, class_names)

    def training_subset(self, train: np.ndarray, labels: Sequence[int], class_names: Sequence[str]) -> np.ndarray:
        """The training images used: all of ``train``, or the stratified, seeded ``train_size`` of them."""
        if self.train_size is None:
            return train
        return stratified_subset(train, labels, self.train_size, self.seed, class_names)

    def check(self, files: Sequence[Path], labels: Sequence[int], folder: Path, class_names: Sequence[str]) -> None:
        """Make the split and the training subset of ``files`` by their names alone, so that lists naming no
        image, or data too small for the fractions or ``train_size``, are refused before any image is decoded."""
        self.training_subset(self.split(files, labels, folder, class_names).train, labels, class_names)

    def fingerprint(self, files: Sequence[Path], labels: Sequence[int], folder: Path, split: Split) -> str:
        """Identifies the train/val/test split (saved in checkpoints, checked when they are restored)."""
        if self.lists is None:
            recipe: object = [self.val_fraction, self.test_fraction, self.seed]
        else:
            recipe = {name: indices.tolist() for name, indices in split._asdict().items()}
        return split_fingerprint(files, labels, folder, recipe)

    def options(self) -> str:
        """The options that chose the split, as a user sets them."""
        if self.lists is not None:
            return "these split_files"
        return f"val_fraction={self.val_fraction}, test_fraction={self.test_fraction}, split_seed={self.seed}"

    def in_words(self) -> str:
        """E.g. "a stratified split (val_fraction 0.1, test_fraction 0.2, split_seed 0)"."""
        if self.split_files is not None:
            how = f"the published split lists {self.split_files}"
        else:
            fractions = f"val_fraction {self.val_fraction}, test_fraction {self.test_fraction}"
            how = f"a stratified split ({fractions}, split_seed {self.seed})"
        return how + (f"; trained on a subset of {self.train_size}" if self.train_size is not None else "")
