"""How a run splits its data: the split options as one value (``data.split``), which makes the split,
names it (a fingerprint checkpoints keep) and says it in words."""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from jsonargparse.typing import NonNegativeInt, PositiveInt

from eurosat_finetune.data.patches.splits import (
    Split,
    listed_split,
    read_split_files,
    split_fingerprint,
    stratified_split,
    stratified_subset,
)
from eurosat_finetune.errors import ConfigError
from eurosat_finetune.tools.option_types import BelowOne, UpToOne


@dataclass(frozen=True)
class SplitChoice:
    """Published lists (``files``), else seeded stratified fractions; and the training subset.

    Args:
        val_fraction: Fraction of all images held out for validation.
        test_fraction: Fraction of all images held out for testing (with ``val_fraction``, below 1).
        seed: Seed of the split alone (not the global seed), so every run sees the same split.
        files: A published split instead of the fractions: ``{train: ..., val: ..., test: ...}``,
            each a text file with one image per line, named as ``<class>/<name>`` or ``<name>``
            (extension ignored, so TorchGeo's ``eurosat-{train,val,test}.txt`` work). Images in no
            list are left out; an image listed twice, or not in the data, is an error.
        train_size: Train on a stratified, seeded subset of the training split: a number of images
            (int) or a fraction of them (float); null uses all. Validation and test sets are unchanged.
        allow_change: Evaluate a checkpoint even if the data's split differs from the one it was
            trained with (by default that is refused: test images might have been trained on).
    """

    val_fraction: BelowOne = 0.1  # 0: no validation split
    test_fraction: BelowOne = 0.2  # 0: no test split
    seed: NonNegativeInt = 0
    files: dict[str, str] | None = None
    train_size: PositiveInt | UpToOne | None = None
    allow_change: bool = False

    def __post_init__(self) -> None:
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                f"data.split.val_fraction={self.val_fraction} and data.split.test_fraction={self.test_fraction} "
                "leave no training images; give fractions that sum to less than 1"
            )
        _ = self.lists  # read when the options are given, so a missing list file fails before any work

    @cached_property
    def lists(self) -> dict[str, list[str]] | None:
        """The entries of ``files``, by split."""
        return read_split_files(self.files) if self.files is not None else None

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
            return "these data.split.files"
        fractions = f"data.split.val_fraction={self.val_fraction}, data.split.test_fraction={self.test_fraction}"
        return f"{fractions} and data.split.seed={self.seed}"

    def in_words(self) -> str:
        """E.g. "a stratified split (val_fraction 0.1, test_fraction 0.2, seed 0)"."""
        if self.files is not None:
            how = f"the published split lists {self.files}"
        else:
            fractions = f"val_fraction {self.val_fraction}, test_fraction {self.test_fraction}"
            how = f"a stratified split ({fractions}, seed {self.seed})"
        return how + (f"; trained on a subset of {self.train_size}" if self.train_size is not None else "")
