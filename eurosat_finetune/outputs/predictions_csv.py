"""``eurosat predict``'s CSV: one row per image, merged from every process."""

import csv
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer

from eurosat_finetune.data.predict_batches import IMAGES
from eurosat_finetune.data.prediction_images import UNREADABLE
from eurosat_finetune.data.scenes.windows import SceneWindows
from eurosat_finetune.errors import UnreadableImageError, counted
from eurosat_finetune.outputs.prediction_writer import AddressedPredictionWriter
from eurosat_finetune.outputs.run_folder import RunOutput


class PredictionWriter(AddressedPredictionWriter):
    """Write ``eurosat predict`` results to a CSV: path, predicted class, its probability, then one
    probability column per class, sorted by path. Files left out (the model cannot take them, or they cannot
    be read) are named with why in a warning; a run that classifies none of them (and maps no scene) fails.

    Each process streams its rows to a part file as batches come; at the end the global rank 0
    process merges the parts into the CSV, so a multi-GPU predict loses no rows.

    Args:
        output: CSV file to write; null writes ``predictions.csv`` in the run folder. An existing
            file is never overwritten.
    """

    kind = IMAGES

    def __init__(self, output: str | Path | None = None) -> None:
        super().__init__()
        self.output = output
        self._rows: Any = None
        self._left_out: Any = None

    def csv_output(self, run_folder: Path) -> RunOutput:
        path = Path(self.output) if self.output is not None else run_folder / "predictions.csv"
        return RunOutput("predictions", path, "--predictions.output")

    def outputs(self, run_folder: Path, subcommand: str) -> list[RunOutput]:
        return [self.csv_output(run_folder)] if subcommand == "predict" else []

    @property
    def path(self) -> Path:
        return self.csv_output(self.run_folder).path

    def _part(self, rank: int, kind: str) -> Path:
        return self.path.with_name(f".{self.path.name}.rank{rank}.{kind}")

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.csv_output(self.run_folder).refuse_existing()  # the CLI checked before; Python callers get it here
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rows = open(self._part(trainer.global_rank, "csv"), "w", newline="")  # noqa: SIM115 (until the end)
        self._left_out = open(self._part(trainer.global_rank, "left_out"), "w", newline="")  # noqa: SIM115

    def write_batch(self, prediction: dict[str, Any], pl_module: LightningModule) -> None:
        rows = csv.writer(self._rows)
        probs = prediction["probs"].float().cpu().numpy()
        for path, row in zip(prediction["paths"], probs, strict=True):
            best = int(row.argmax())
            rows.writerow([path, pl_module.class_names[best], f"{row[best]:.6f}", *(f"{p:.6f}" for p in row)])
        csv.writer(self._left_out).writerows(prediction["left_out"])

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._rows.close()
        self._left_out.close()
        trainer.strategy.barrier()
        nothing: list[list[str]] = []  # (file, why) of images none of which was classified (raised after the barrier)
        maps = any(isinstance(getattr(loader, "dataset", None), SceneWindows) for loader in loaders_of(trainer))
        if trainer.is_global_zero:
            nothing = self._merge(trainer.world_size, pl_module.class_names, fail_if_empty=not maps)
        trainer.strategy.barrier()
        if nothing:  # a run that predicted nothing (no scene mapped either) fails, naming why
            reasons = Counter(why for _, why in nothing)
            why, count = reasons.most_common(1)[0]
            example = next(path for path, reason in nothing if reason == why)
            if len(nothing) == 1:  # one file given, or found
                said = "could not be read" if why == UNREADABLE else f"has {why}"
                raise UnreadableImageError(f"nothing under data.predict_root could be classified: {example} {said}")
            others = f" ({len(nothing) - count} more for other reasons)" if len(reasons) > 1 else ""
            said = "could not be read" if why == UNREADABLE else f"have {why}"
            raise UnreadableImageError(
                f"no image under data.predict_root could be classified: {count} of {len(nothing)} {said}{others}, "
                f"e.g. {example}"
            )

    def _merge(self, world_size: int, class_names: list[str], fail_if_empty: bool) -> list[list[str]]:
        """Gather every process's rows into the CSV; with ``fail_if_empty`` and no row, write none and return
        the images left out, with why (the run predicted nothing)."""
        rows, left_out = [], []
        for rank in range(world_size):
            for kind, gathered in (("csv", rows), ("left_out", left_out)):
                with open(self._part(rank, kind), newline="") as f:
                    gathered += list(csv.reader(f))
        parts = [self._part(rank, kind) for rank in range(world_size) for kind in ("csv", "left_out")]
        if rows:
            tmp = self._part(0, "merged")
            with open(tmp, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["path", "predicted_class", "probability", *class_names])
                writer.writerows(sorted(rows))
            os.replace(tmp, self.path)
        for part in parts:
            part.unlink()
        if not rows and fail_if_empty and left_out:  # nothing predicted: no CSV of a header alone (it fails)
            return sorted(left_out)
        if left_out:
            if all(why == UNREADABLE for _, why in left_out):
                said, listing = "unreadable image", ", ".join(path for path, _ in sorted(left_out))
            else:
                said = "image the model cannot take or read"
                listing = ", ".join(f"{path} ({why})" for path, why in sorted(left_out))
            where = f"not in {self.path}" if rows else "nothing classified"
            warnings.warn(
                f"skipped {counted(len(left_out), said, said.replace('image', 'images', 1))}, {where}: {listing}",
                LeftOutImagesWarning,
                stacklevel=1,
            )
        if rows:  # a run that only mapped scenes writes no CSV of a header alone
            print(f"Predictions written to {self.path}")
        return []


class LeftOutImagesWarning(UserWarning):
    """Files under ``data.predict_root`` left out of the predictions, each with why."""


def loaders_of(trainer: Trainer) -> list[Any]:
    """The predict loaders (Lightning gives one or a list)."""
    loaders = trainer.predict_dataloaders
    return list(loaders) if isinstance(loaders, list | tuple) else [loaders]
