"""``eurosat predict``'s CSV: one row per image, merged from every process."""

import csv
import os
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer

from eurosat_finetune.data.predict_batches import IMAGES
from eurosat_finetune.data.scenes.windows import SceneWindows
from eurosat_finetune.errors import UnreadableImageError
from eurosat_finetune.outputs.prediction_writer import AddressedPredictionWriter
from eurosat_finetune.outputs.run_folder import RunOutput


class PredictionWriter(AddressedPredictionWriter):
    """Write ``eurosat predict`` results to a CSV: path, predicted class, its probability, then one
    probability column per class, sorted by path. Unreadable files are listed in a warning.

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
        self._unreadable: Any = None

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
        self._unreadable = open(self._part(trainer.global_rank, "unreadable"), "w")  # noqa: SIM115

    def write_batch(self, prediction: dict[str, Any], pl_module: LightningModule) -> None:
        rows = csv.writer(self._rows)
        probs = prediction["probs"].float().cpu().numpy()
        for path, row in zip(prediction["paths"], probs, strict=True):
            best = int(row.argmax())
            rows.writerow([path, pl_module.class_names[best], f"{row[best]:.6f}", *(f"{p:.6f}" for p in row)])
        self._unreadable.writelines(f"{path}\n" for path in prediction["unreadable"])

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._rows.close()
        self._unreadable.close()
        trainer.strategy.barrier()
        nothing: list[str] = []  # images none of which could be classified (raised after the last barrier)
        maps = any(isinstance(getattr(loader, "dataset", None), SceneWindows) for loader in loaders_of(trainer))
        if trainer.is_global_zero:
            nothing = self._merge(trainer.world_size, pl_module.class_names, fail_if_empty=not maps)
        trainer.strategy.barrier()
        if nothing:  # a run that predicted nothing (no scene mapped either) fails, naming what the model takes
            names = (getattr(pl_module, "input_bands", None) or {}).get("names")
            takes = f"{len(names)}-band images ({', '.join(names)})" if names else "RGB images (3 bands)"
            raise UnreadableImageError(
                f"no image under data.predict_root could be classified: {len(nothing)} could not be read as the "
                f"model takes them ({takes}), e.g. {nothing[0]}"
            )

    def _merge(self, world_size: int, class_names: list[str], fail_if_empty: bool) -> list[str]:
        """Gather every process's rows into the CSV; with ``fail_if_empty`` and no row, write none and return
        the images that could not be read (the run predicted nothing)."""
        rows, unreadable = [], []
        for rank in range(world_size):
            with open(self._part(rank, "csv"), newline="") as f:
                rows += list(csv.reader(f))
            unreadable += self._part(rank, "unreadable").read_text().splitlines()
        if fail_if_empty and unreadable and not rows:  # nothing predicted: no CSV of a header alone (it fails)
            for rank in range(world_size):
                self._part(rank, "csv").unlink()
                self._part(rank, "unreadable").unlink()
            return sorted(unreadable)
        tmp = self._part(0, "merged")
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "predicted_class", "probability", *class_names])
            writer.writerows(sorted(rows))
        os.replace(tmp, self.path)
        for rank in range(world_size):
            self._part(rank, "csv").unlink()
            self._part(rank, "unreadable").unlink()
        if unreadable:
            listing = ", ".join(sorted(unreadable))
            warnings.warn(f"skipped {len(unreadable)} unreadable image(s), not in {self.path}: {listing}", stacklevel=1)
        print(f"Predictions written to {self.path}")
        return []


def loaders_of(trainer: Trainer) -> list[Any]:
    """The predict loaders (Lightning gives one or a list)."""
    loaders = trainer.predict_dataloaders
    return list(loaders) if isinstance(loaders, list | tuple) else [loaders]
