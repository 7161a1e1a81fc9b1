"""Callbacks that turn runs into artifacts: test reports, validation samples, predictions, exports.

The CLI adds each of them to every run as a configurable group (``--report.*``, ``--val_samples.*``,
``--predictions.*``, ``--export.*``), so ``eurosat test`` always reports and ``eurosat predict`` always
writes its CSV, with or without a config. Files go to the run's log dir (``trainer.log_dir``) and
are written by the global rank 0 process only.
"""

import csv
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure
from sklearn.metrics import classification_report

from eurosat_finetune.errors import OutputError
from eurosat_finetune.export import export_huggingface

log = logging.getLogger(__name__)


def run_dir(trainer: Trainer) -> Path:
    """The folder this run's files belong in: the logger's version dir, else ``default_root_dir``."""
    return Path(trainer.log_dir or trainer.default_root_dir)


def _tensorboard(trainer: Trainer) -> Any:
    """The TensorBoard ``SummaryWriter`` of the run, if it logs to TensorBoard."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def plot_confusion_matrix(matrix: np.ndarray, class_names: list[str]) -> Figure:
    """Counts as text, colours normalised per row (each true class sums to 1), names on both axes."""
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)
    size = 1.2 + 0.6 * len(class_names)
    fig = Figure(figsize=(size + 1.5, size), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if normalised[row, col] > 0.5 else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    ax.set_title(f"Confusion matrix ({int(matrix.sum())} images)")
    return fig


def labels_from_confusion_matrix(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (true, predicted) label pairs a confusion matrix counts, for scikit-learn's reports."""
    pairs = np.indices(matrix.shape).reshape(2, -1)
    counts = matrix.reshape(-1)
    return np.repeat(pairs[0], counts), np.repeat(pairs[1], counts)


class EvaluationReport(Callback):
    """After ``test``: confusion matrix PNG (also in TensorBoard) and scikit-learn's classification report.

    Writes ``confusion_matrix.png``, ``classification_report.txt``, ``.json`` and ``.csv`` into the
    run's log dir and prints the text report. The numbers come from the model's torchmetrics
    confusion matrix, which is synced across processes.

    Args:
        enabled: Write the report after each test run.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.run_dir: Path | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.run_dir = run_dir(trainer)  # on every process: trainer.log_dir is a collective call

    @rank_zero_only
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        matrix = getattr(pl_module, "test_confusion_matrix", None)
        if not self.enabled or matrix is None:
            return
        matrix = matrix.numpy()
        names = list(pl_module.class_names)
        out = self.run_dir
        out.mkdir(parents=True, exist_ok=True)

        fig = plot_confusion_matrix(matrix, names)
        fig.savefig(out / "confusion_matrix.png", dpi=120)
        writer = _tensorboard(trainer)
        if writer is not None:
            writer.add_figure("test/confusion_matrix", fig, global_step=trainer.global_step)

        y_true, y_pred = labels_from_confusion_matrix(matrix)
        kwargs = {"labels": list(range(len(names))), "target_names": names, "zero_division": 0}
        text = classification_report(y_true, y_pred, digits=4, **kwargs)
        report = classification_report(y_true, y_pred, output_dict=True, **kwargs)
        (out / "classification_report.txt").write_text(text)
        (out / "classification_report.json").write_text(json.dumps(report, indent=2))
        with open(out / "classification_report.csv", "w", newline="") as f:
            rows = csv.writer(f)
            rows.writerow(["class", "precision", "recall", "f1-score", "support"])
            for name, scores in report.items():
                if isinstance(scores, dict):
                    rows.writerow([name, *(scores[k] for k in ("precision", "recall", "f1-score", "support"))])
        print(f"\nClassification report (recall = per-class accuracy), also in {out}:\n{text}")


class ValidationSamples(Callback):
    """Log a grid of validation images with their true and predicted classes to TensorBoard.

    Once per validation epoch, from the first batch; skipped during the sanity check and when the run
    has no TensorBoard logger.

    Args:
        num_images: Images in the grid; 0 disables it.
    """

    def __init__(self, num_images: int = 16) -> None:
        self.num_images = num_images

    @rank_zero_only
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        writer = _tensorboard(trainer)
        if batch_idx != 0 or dataloader_idx != 0 or trainer.sanity_checking or not self.num_images or writer is None:
            return
        images, labels = batch
        count = min(self.num_images, len(images))
        columns = min(count, 8)
        rows = -(-count // columns)
        fig = Figure(figsize=(1.6 * columns, 1.8 * rows), layout="constrained")
        axes = fig.subplots(rows, columns, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i >= count:
                continue
            truth, pred = pl_module.class_names[labels[i]], pl_module.class_names[outputs["preds"][i]]
            ax.imshow(images[i].permute(1, 2, 0).cpu().numpy())
            ax.set_title(f"{truth}\n→ {pred}", fontsize=6, color="green" if truth == pred else "red")
        writer.add_figure("val/samples", fig, global_step=trainer.global_step)


class PredictionWriter(BasePredictionWriter):
    """Write ``eurosat predict`` results to a CSV: path, predicted class, its probability, then one
    probability column per class, sorted by path. Unreadable files are listed in a warning.

    Each process streams its rows to a part file as batches come; at the end the global rank 0
    process merges the parts into the CSV, so a multi-GPU predict loses no rows.

    Args:
        output: CSV file to write; null writes ``predictions.csv`` in the run's log dir. An existing
            file is never overwritten.
    """

    def __init__(self, output: str | Path | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output = output
        self.path: Path | None = None
        self._file: Any = None
        self._writer: Any = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "predict":  # on every process: trainer.log_dir is a collective call
            self.path = Path(self.output) if self.output is not None else run_dir(trainer) / "predictions.csv"

    def _part(self, rank: int, kind: str) -> Path:
        return self.path.with_name(f".{self.path.name}.rank{rank}.{kind}")

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.path.exists():
            raise OutputError(f"{self.path} already exists; choose another --predictions.output or move the old file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self._part(trainer.global_rank, "csv"), "w", newline="")  # noqa: SIM115 (until the end)
        self._writer = csv.writer(self._file)
        self._unreadable = open(self._part(trainer.global_rank, "unreadable"), "w")  # noqa: SIM115

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        probs = prediction["probs"].float().cpu().numpy()
        for path, row in zip(prediction["paths"], probs, strict=True):
            best = int(row.argmax())
            self._writer.writerow([path, pl_module.class_names[best], f"{row[best]:.6f}", *(f"{p:.6f}" for p in row)])
        self._unreadable.writelines(f"{path}\n" for path in prediction["unreadable"])

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._file.close()
        self._unreadable.close()
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            self._merge(trainer.world_size, pl_module.class_names)
        trainer.strategy.barrier()

    def _merge(self, world_size: int, class_names: list[str]) -> None:
        rows, unreadable = [], []
        for rank in range(world_size):
            with open(self._part(rank, "csv"), newline="") as f:
                rows += list(csv.reader(f))
            unreadable += self._part(rank, "unreadable").read_text().splitlines()
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


class HuggingFaceExport(Callback):
    """Save the model as a Hugging Face directory (``save_pretrained`` model + image processor).

    ``transformers.pipeline("image-classification", model=<dir>)`` then classifies images with the
    real class names. After ``fit`` the best checkpoint's weights are exported (the final weights if
    no checkpoint was kept); after ``test`` the tested weights.

    Args:
        dirpath: Where to write; null uses ``huggingface/`` in the run's log dir.
        after_fit: Export when fitting ends.
        after_test: Export when testing ends (e.g. ``eurosat test --ckpt_path best.ckpt --export.after_test true``).
    """

    def __init__(self, dirpath: str | Path | None = None, after_fit: bool = True, after_test: bool = False) -> None:
        self.dirpath = dirpath
        self.after_fit = after_fit
        self.after_test = after_test
        self.run_dir: Path | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.run_dir = run_dir(trainer)  # on every process: trainer.log_dir is a collective call

    def _export(self, trainer: Trainer, pl_module: LightningModule, state_dict: dict | None = None) -> None:
        path = Path(self.dirpath) if self.dirpath is not None else self.run_dir / "huggingface"
        export_huggingface(pl_module, path, state_dict)
        print(f"Hugging Face model written to {path}")

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.after_fit:
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        state_dict = torch.load(best, map_location="cpu", weights_only=True)["state_dict"] if best else None
        self._export(trainer, pl_module, state_dict)

    @rank_zero_only
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.after_test:
            self._export(trainer, pl_module)
