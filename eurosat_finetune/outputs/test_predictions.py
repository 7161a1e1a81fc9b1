"""Every test image's true and predicted class (``test_predictions.csv``), and an earlier test's read back, so
that two models are compared on the same images, image by image."""

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eurosat_finetune.errors import ConfigError, counted

PREDICTIONS_NAME = "test_predictions.csv"
REPORT_JSON = "classification_report.json"  # beside it: the report's JSON, which says whether TTA was on
COLUMNS = ["image", "true", "predicted"]


def relative_names(files: Sequence[str | Path]) -> list[str]:
    """Each file's path below the folder all of them share, so that copies of the data in other folders or on
    other machines pair up."""
    paths = [str(f) for f in files]
    root = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    return [Path(os.path.relpath(path, root)).as_posix() for path in paths]


@dataclass(frozen=True)
class ImagePredictions:
    """Test images (paths below their common folder) with their true and predicted class names (no predicted
    ones where only the test set is known)."""

    images: list[str]
    true: list[str]
    predicted: list[str]
    source: Path | None = None
    test_time_augmentation: bool | None = None  # of an earlier test, as its report says (None: no report)

    def correct(self) -> list[bool]:
        return [t == p for t, p in zip(self.true, self.predicted, strict=True)]

    def write(self, path: Path) -> None:
        with open(path, "w", newline="") as f:
            rows = csv.writer(f)
            rows.writerow(COLUMNS)
            rows.writerows(zip(self.images, self.true, self.predicted, strict=True))

    def check_same_images(self, other: "ImagePredictions") -> None:
        """Refuse, in one line, a test of other images, or of the same images under other classes."""
        mine, theirs = dict(zip(self.images, self.true, strict=True)), dict(zip(other.images, other.true, strict=True))
        unshared = sorted(set(mine) ^ set(theirs))
        where = f"--report.compare_with: {self.source}"
        if unshared:
            raise ConfigError(
                f"{where} holds {counted(len(mine), 'test image')} and this test {len(theirs)}, and "
                f"{len(unshared)} {'is' if len(unshared) == 1 else 'are'} not in both (e.g. {unshared[0]}); "
                "compare two tests of the same split (data.split, the same data)"
            )
        relabelled = sorted(image for image in mine if mine[image] != theirs[image])
        if relabelled:
            first = relabelled[0]
            raise ConfigError(
                f"{where}: {counted(len(relabelled), 'test image')} {'has' if len(relabelled) == 1 else 'have'} "
                f"another true class there (e.g. {first}: "
                f"{mine[first]} there, {theirs[first]} here); compare two tests of the same labelled data"
            )


def earlier_predictions(path: Path, option: str) -> ImagePredictions:
    """The predictions of an earlier test: its run folder's ``test_predictions.csv``, or that file itself."""
    file = path / PREDICTIONS_NAME if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(
            f"{option}: {file} does not exist; give the run folder of an earlier `eurosat test` (it holds "
            f"{PREDICTIONS_NAME}) or that file"
        )
    try:
        with open(file, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(
            f"{option}: {file} cannot be read ({err}); give an earlier test's {PREDICTIONS_NAME}"
        ) from None
    if not rows or any(column not in rows[0] or rows[0][column] is None for column in COLUMNS):
        raise ConfigError(
            f"{option}: {file} is not a test's predictions (it needs the columns {', '.join(COLUMNS)} and a row "
            f"per image); give an earlier test's {PREDICTIONS_NAME}"
        )
    images, true, predicted = ([row[column] for row in rows] for column in COLUMNS)
    return ImagePredictions(images, true, predicted, file, augmented_in(file.with_name(REPORT_JSON)))


def augmented_in(report: Path) -> bool | None:
    """Whether the test whose report this is used test-time augmentation; None if its report does not say."""
    try:
        return json.loads(report.read_text())["intervals"]["test_time_augmentation"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
