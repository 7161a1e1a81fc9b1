"""Finished test runs read back from their run folders: the test accuracy of ``classification_report.json``,
the seed the tested weights were trained with, and which images were tested (their number, whether with
test-time augmentation, and a fingerprint of their names in ``test_predictions.csv``)."""

import csv
import glob
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from eurosat_finetune.errors import ConfigError, DataNotFoundError
from eurosat_finetune.outputs.report import REPORT_NAME
from eurosat_finetune.outputs.test_predictions import PREDICTIONS_NAME

REPORT_JSON = Path(REPORT_NAME).with_suffix(".json").name
CONFIG_NAME = "config.yaml"  # LightningCLI's saved config, in every run folder


@dataclass(frozen=True)
class TestedRun:
    """A run folder holding a test report, with the seed of the fit that trained the weights it tested."""

    folder: Path
    seed: int
    accuracy: float
    images: int | None = None  # None: a report written before it had `intervals`, so the images are unknown
    tta: bool | None = None
    image_set: str | None = None  # a hash of the sorted image names of test_predictions.csv, where it exists

    def checked(self) -> bool:
        """Whether what it tested is known, so that it can be checked against the other runs."""
        return self.images is not None and self.tta is not None


def read_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(
            f"{path} cannot be read as a run's config ({type(err).__name__}); check the run folder"
        ) from None


def training_seed(folder: Path) -> int:
    """The ``seed_everything`` of the fit that trained the weights this run tested.

    A ``eurosat test`` run's own ``seed_everything`` is its config's, not the training's: its ``ckpt_path``
    leads to ``<fit run folder>/checkpoints/<name>.ckpt``, whose fit run folder's config holds the seed.
    A run folder whose config has no ``ckpt_path`` at all was fit and tested in one process (the seed
    study's own runs, the learning curve's): its seed is its own."""
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise DataNotFoundError(f"{folder} holds a test report but no {CONFIG_NAME}: its seed is unknown; leave it out")
    config = read_yaml(config_path)
    if "ckpt_path" in config:
        if not config["ckpt_path"]:
            raise ConfigError(
                f"{config_path}: tested without --ckpt_path, so no fit run gives its seed; leave the run out"
            )
        fit_config = Path(config["ckpt_path"]).parent.parent / CONFIG_NAME
        if not fit_config.is_file():
            raise DataNotFoundError(
                f"{config_path}: the fit run of its ckpt_path {config['ckpt_path']} has no {fit_config}, so its "
                "seed is unknown; run the study where that path resolves, or leave the run out"
            )
        config_path, config = fit_config, read_yaml(fit_config)
    seed = config.get("seed_everything")
    if isinstance(seed, bool) or not isinstance(seed, int):  # false/null: unseeded; true was replaced when saved
        raise ConfigError(f"{config_path}: seed_everything is {seed!r}, not a seed; leave the run out of the study")
    return seed


def image_set(file: Path) -> str | None:
    """A fingerprint of the tested images: the first 12 hex digits of the SHA-256 of their sorted names (paths
    below the data's folder, so copies of the data elsewhere match). None where the file is absent."""
    if not file.is_file():
        return None
    try:
        with open(file, newline="") as f:
            names = sorted(row["image"] for row in csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError):
        raise ConfigError(
            f"{file} cannot be read as a test's predictions (columns image,true,predicted); rerun its test"
        ) from None
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]


def read_run(folder: Path) -> TestedRun:
    try:  # only `accuracy` and what was tested are read: the rest of the report may grow
        report = json.loads((folder / REPORT_JSON).read_text())
    except (OSError, ValueError):
        report = None
    if not isinstance(report, dict) or not isinstance(report.get("accuracy"), int | float):
        raise ConfigError(f"{folder / REPORT_JSON} has no overall accuracy; rerun its test")
    intervals = report.get("intervals")
    if intervals is None:  # written before the report had intervals: accepted, its images unchecked
        return TestedRun(folder, training_seed(folder), float(report["accuracy"]))
    images = intervals.get("images") if isinstance(intervals, dict) else None
    tta = intervals.get("test_time_augmentation") if isinstance(intervals, dict) else None
    if isinstance(images, bool) or not isinstance(images, int) or not isinstance(tta, bool):
        raise ConfigError(
            f"{folder / REPORT_JSON}: its intervals do not say how many images were tested (images) and whether "
            "with test-time augmentation; rerun its test"
        )
    return TestedRun(
        folder, training_seed(folder), float(report["accuracy"]), images, tta, image_set(folder / PREDICTIONS_NAME)
    )


def find_runs(where: str) -> list[TestedRun]:
    """The test runs under ``where``: a folder searched at any depth, or a glob pattern (``runs/plain/version_*``)
    whose matches are searched so, in the order of their folders' paths."""
    roots = (
        [Path(p) for p in sorted(glob.glob(where, recursive=True))] if any(c in where for c in "*?[") else [Path(where)]
    )
    folders = sorted({report.parent for root in roots if root.is_dir() for report in root.rglob(REPORT_JSON)})
    if not folders:
        raise DataNotFoundError(
            f"no test run (a run folder with {REPORT_JSON}) under {where}; give a folder or glob of `eurosat test` runs"
        )
    return [read_run(folder) for folder in folders]
