"""The test report: a confusion matrix (PNG and TensorBoard), scikit-learn's classification report with the
figures' 95% intervals, every test image's prediction, and on request the paired comparison with an earlier
test of another model on the same images."""

import csv
import json
from pathlib import Path

import numpy as np
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure
from sklearn.metrics import classification_report

from eurosat_finetune.errors import counted
from eurosat_finetune.outputs.run_folder import RunFolderCallback, RunOutput, tensorboard
from eurosat_finetune.outputs.test_predictions import (
    PREDICTIONS_NAME,
    ImagePredictions,
    earlier_predictions,
    relative_names,
)
from eurosat_finetune.statistics.classification import ClassificationIntervals, pairs_counted
from eurosat_finetune.statistics.paired import compare_paired

REPORT_NAME = "classification_report.txt"  # with .json and .csv beside it
COMPARISON_NAME = "comparison.json"


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


def intervals_text(intervals: ClassificationIntervals, names: list[str], tta: bool) -> str:
    """The figures' 95% intervals, as a table below scikit-learn's."""
    accuracy, macro_f1 = intervals.accuracy, intervals.macro_f1
    augmented = " (with test-time augmentation)" if tta else ""
    lines = [
        f"95% intervals over the {counted(intervals.images, 'test image')}{augmented}:",
        f"  accuracy {accuracy.estimate:.4f}, {accuracy.bounds()} ({accuracy.method})",
        f"  macro F1 {macro_f1.estimate:.4f}, {macro_f1.bounds()} ({macro_f1.method})",
        "  per class: precision and recall by Wilson's score interval; F1 joins their bounds, each at 97.5%",
        "",
        f"{'':>24}  {'precision':>16}  {'recall':>16}  {'f1-score':>16}",
    ]
    for name, *figures in zip(names, intervals.precision, intervals.recall, intervals.f1, strict=True):
        lines.append(f"{name:>24}  " + "  ".join(f"{f.bounds():>16}" for f in figures))
    return "\n".join(lines) + "\n"


class EvaluationReport(RunFolderCallback):
    """After ``test``: the confusion matrix, the classification report with 95% intervals, each image's
    prediction and, with ``compare_with``, this model against an earlier one on the same images.

    Writes ``confusion_matrix.png`` (also in TensorBoard), ``classification_report.txt``, ``.json`` and
    ``.csv`` (each figure with its interval: Wilson's for accuracy, a bootstrap over the test images for the
    others) and ``test_predictions.csv`` into the run folder, and prints the text report. The numbers come
    from the model's confusion matrix, counted from every image's prediction, gathered from every process.

    Args:
        enabled: Write the report after each test run.
        compare_with: An earlier test of another model on the same images: its run folder, or its
            ``test_predictions.csv``. The report adds this model's accuracy less that one's, with a 95%
            interval for the paired difference, and McNemar's exact test (``comparison.json``, printed).
            A test on other images is refused before it starts.
    """

    def __init__(self, enabled: bool = True, compare_with: Path | None = None) -> None:
        self.enabled = enabled
        self.compare_with = compare_with
        self.earlier: ImagePredictions | None = None

    def outputs(self, run_folder: Path, subcommand: str) -> list[RunOutput]:
        if subcommand != "test" or not self.enabled:
            return []
        outputs = [
            RunOutput("confusion matrix", run_folder / "confusion_matrix.png", "run folder"),
            RunOutput("classification report (.txt, .json, .csv)", run_folder / REPORT_NAME, "run folder"),
            RunOutput("test predictions", run_folder / PREDICTIONS_NAME, "run folder"),
        ]
        if self.compare_with is not None:
            outputs.append(RunOutput("comparison", run_folder / COMPARISON_NAME, "run folder"))
        return outputs

    def check_inputs(self, subcommand: str) -> None:
        """Read the earlier test's predictions before any work: a missing or foreign file is one line."""
        if subcommand == "test" and self.enabled and self.compare_with is not None:
            self.earlier = earlier_predictions(Path(self.compare_with), "--report.compare_with")

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Refuse to compare with a test of other images before this one starts (on every process)."""
        super().setup(trainer, pl_module, stage)
        if stage != "test" or self.earlier is None:
            return
        dataset = getattr(trainer.datamodule, "test_dataset", None)
        if dataset is not None:
            names = list(pl_module.class_names)
            self.earlier.check_same_images(
                ImagePredictions(relative_names(dataset.files), [names[i] for i in dataset.labels], [])
            )

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

        intervals: ClassificationIntervals = pl_module.test_intervals
        tta = bool(pl_module.hparams.get("tta"))
        y_true, y_pred = pairs_counted(matrix)
        labels = list(range(len(names)))
        text = classification_report(y_true, y_pred, labels=labels, target_names=names, digits=4, zero_division=0)
        text += "\n" + intervals_text(intervals, names, tta)
        report = classification_report(
            y_true, y_pred, labels=labels, target_names=names, output_dict=True, zero_division=0
        )
        report["intervals"] = {**intervals.as_dict(names), "test_time_augmentation": tta}
        (out / REPORT_NAME).write_text(text)
        (out / REPORT_NAME).with_suffix(".json").write_text(json.dumps(report, indent=2))
        self.write_csv(out / REPORT_NAME, report, intervals, names)
        print(f"\nClassification report (recall = per-class accuracy), also in {out}:\n{text}")

        tested = self.tested_images(trainer, pl_module)
        if tested is not None:
            tested.write(out / PREDICTIONS_NAME)
            if self.earlier is not None:
                self.compare(tested, tta, out / COMPARISON_NAME)

    @staticmethod
    def write_csv(path: Path, report: dict, intervals: ClassificationIntervals, names: list[str]) -> None:
        """One row per class and average, with each class's 95% intervals and macro F1's."""
        low_high = [f"{figure}_{end}" for figure in ("precision", "recall", "f1-score") for end in ("low", "high")]
        with open(path.with_suffix(".csv"), "w", newline="") as f:
            rows = csv.writer(f)
            rows.writerow(["class", "precision", "recall", "f1-score", "support", *low_high])
            per_class = dict(
                zip(names, zip(intervals.precision, intervals.recall, intervals.f1, strict=True), strict=True)
            )
            for name, scores in report.items():
                if not isinstance(scores, dict) or name == "intervals":
                    continue
                bounds = [""] * len(low_high)
                if name in per_class:
                    bounds = [value for interval in per_class[name] for value in (interval.low, interval.high)]
                elif name == "macro avg":
                    bounds[4:] = [intervals.macro_f1.low, intervals.macro_f1.high]
                rows.writerow([name, *(scores[k] for k in ("precision", "recall", "f1-score", "support")), *bounds])

    @staticmethod
    def tested_images(trainer: Trainer, pl_module: LightningModule) -> ImagePredictions | None:
        """Each test image's file (below the folder all the test set's files share, whichever were tested),
        true and predicted class, in the test set's order."""
        predictions = getattr(pl_module, "test_predictions", None)
        dataset = getattr(trainer.datamodule, "test_dataset", None)
        if predictions is None or dataset is None or not hasattr(dataset, "files"):
            return None
        every_name, names = relative_names(dataset.files), list(pl_module.class_names)
        return ImagePredictions(
            [every_name[i] for i in predictions.indices.tolist()],
            [names[i] for i in predictions.true.tolist()],
            [names[i] for i in predictions.predicted.tolist()],
        )

    def compare(self, tested: ImagePredictions, tta: bool, path: Path) -> None:
        """This model (B) against the earlier one (A), image by image, on the images this test evaluated (all of
        the earlier test's, unless ``trainer.limit_test_batches`` held it to some)."""
        earlier = self.earlier  # holds the same test set: setup checked it
        by_image = dict(zip(earlier.images, earlier.correct(), strict=True))
        a_correct = np.array([by_image[image] for image in tested.images])
        comparison = compare_paired(a_correct, np.array(tested.correct()), names=("the earlier model", "this model"))
        record = {
            "earlier": str(earlier.source),
            "test_time_augmentation": {"this test": tta, "the earlier test": earlier.test_time_augmentation},
            **comparison.as_dict(),
        }
        path.write_text(json.dumps(record, indent=2))
        on = f"the same {counted(comparison.images, 'image')}"
        if comparison.images < len(earlier.images):
            on = f"{comparison.images} of the {len(earlier.images)} images both tested (trainer.limit_test_batches)"
        augmented = {True: "with test-time augmentation", False: "without", None: "(not recorded)"}
        views = ""
        if earlier.test_time_augmentation != tta:
            views = f" This test is {augmented[tta]}, the earlier one {augmented[earlier.test_time_augmentation]}."
        print(
            f"Against {earlier.source} on {on}: accuracy {100 * comparison.difference.estimate:+.2f} points "
            f"(95% CI {comparison.difference.bounds(2, 100, '+')}); {comparison.only_b_correct} right only here, "
            f"{comparison.only_a_correct} only there. {comparison.verdict[0].upper()}{comparison.verdict[1:]}.{views}"
        )
