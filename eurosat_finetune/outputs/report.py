"""The test report: a confusion matrix (PNG and TensorBoard) and scikit-learn's classification report."""

import csv
import json
from pathlib import Path

import numpy as np
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure
from sklearn.metrics import classification_report

from eurosat_finetune.outputs.run_folder import RunFolderCallback, RunOutput, tensorboard

REPORT_NAME = "classification_report.txt"  # with .json and .csv beside it


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


class EvaluationReport(RunFolderCallback):
    """After ``test``: confusion matrix PNG (also in TensorBoard) and scikit-learn's classification report.

    Writes ``confusion_matrix.png``, ``classification_report.txt``, ``.json`` and ``.csv`` into the
    run folder and prints the text report. The numbers come from the model's torchmetrics confusion
    matrix, which is synced across processes.

    Args:
        enabled: Write the report after each test run.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def outputs(self, run_folder: Path, subcommand: str) -> list[RunOutput]:
        if subcommand != "test" or not self.enabled:
            return []
        return [
            RunOutput("confusion matrix", run_folder / "confusion_matrix.png", "run folder"),
            RunOutput("classification report (.txt, .json, .csv)", run_folder / REPORT_NAME, "run folder"),
        ]

    @rank_zero_only
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        matrix = getattr(pl_module, "test_confusion_matrix", None)
        if not self.enabled or matrix is None:
            return
        matrix = matrix.numpy()
        names = list(pl_module.class_names)
        out = self.run_folder
        out.mkdir(parents=True, exist_ok=True)

        fig = plot_confusion_matrix(matrix, names)
        fig.savefig(out / "confusion_matrix.png", dpi=120)
        writer = tensorboard(trainer)
        if writer is not None:
            writer.add_figure("test/confusion_matrix", fig, global_step=trainer.global_step)

        y_true, y_pred = labels_from_confusion_matrix(matrix)
        labels = list(range(len(names)))
        text = classification_report(y_true, y_pred, labels=labels, target_names=names, digits=4, zero_division=0)
        report = classification_report(
            y_true, y_pred, labels=labels, target_names=names, output_dict=True, zero_division=0
        )
        (out / REPORT_NAME).write_text(text)
        (out / REPORT_NAME).with_suffix(".json").write_text(json.dumps(report, indent=2))
        with open((out / REPORT_NAME).with_suffix(".csv"), "w", newline="") as f:
            rows = csv.writer(f)
            rows.writerow(["class", "precision", "recall", "f1-score", "support"])
            for name, scores in report.items():
                if isinstance(scores, dict):
                    rows.writerow([name, *(scores[k] for k in ("precision", "recall", "f1-score", "support"))])
        print(f"\nClassification report (recall = per-class accuracy), also in {out}:\n{text}")
