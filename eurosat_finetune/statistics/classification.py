"""The figures of a test with their 95% intervals. Accuracy, and each class's precision and recall, are
proportions (images right of the images counted), so they get Wilson's interval. A class's F1 grows with both
its precision and its recall, so its interval joins theirs, each taken at 97.5% so that both hold together
with 95% (Bonferroni): a bootstrap would give a class no test image got wrong the interval [1, 1], and a
small class 0 in every resample that misses it. Macro F1 averages every class: a bootstrap over the test
images (scipy.stats.bootstrap, BCa)."""

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap

from eurosat_finetune.statistics.proportions import CONFIDENCE, Interval, proportion_interval

RESAMPLES = 2000  # the bounds move by under 0.1 point between seeds at 5,400 images
SEED = 0  # the same predictions always get the same intervals
BATCH = 250  # resamples computed at once: 250 x 5,400 images x 8 bytes, about 11 MB an array


@dataclass(frozen=True)
class ClassificationIntervals:
    """A test's figures with their intervals; per-class lists in class order."""

    images: int
    accuracy: Interval
    macro_f1: Interval
    precision: list[Interval]
    recall: list[Interval]
    f1: list[Interval]

    def as_dict(self, class_names: list[str]) -> dict:
        per_class = zip(class_names, self.precision, self.recall, self.f1, strict=True)
        return {
            "images": self.images,
            "accuracy": self.accuracy.as_dict(),
            "macro_f1": self.macro_f1.as_dict(),
            "classes": {
                name: {"precision": p.as_dict(), "recall": r.as_dict(), "f1": f.as_dict()}
                for name, p, r, f in per_class
            },
        }


def per_class_scores(true: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Precision, recall and F1 of each class and macro F1, as scikit-learn computes them (0 where a class
    is never predicted or never true), for each row of ``true``/``predicted`` (shape ``(..., images)``):
    shape ``(3 * classes + 1, ...)``, as ``scipy.stats.bootstrap`` takes a vectorised statistic's output."""
    lead = true.shape[:-1]
    true, predicted = true.reshape(-1, true.shape[-1]), predicted.reshape(-1, predicted.shape[-1])
    rows = len(true)
    # one confusion matrix per row, counted by a single bincount over cells offset by the row
    cells = (np.arange(rows)[:, None] * classes + true) * classes + predicted
    matrices = np.bincount(cells.ravel(), minlength=rows * classes * classes).reshape(rows, classes, classes)
    hits = np.diagonal(matrices, axis1=1, axis2=2).astype(float)
    predicted_count, true_count = matrices.sum(axis=1), matrices.sum(axis=2)
    precision = np.divide(hits, predicted_count, out=np.zeros_like(hits), where=predicted_count > 0)
    recall = np.divide(hits, true_count, out=np.zeros_like(hits), where=true_count > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    scores = np.concatenate([precision, recall, f1, f1.mean(axis=1, keepdims=True)], axis=1)
    return np.moveaxis(scores.reshape(*lead, -1), -1, 0)


def pairs_counted(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (true, predicted) label of every image a confusion matrix counts (rows true, columns predicted)."""
    pairs = np.indices(matrix.shape).reshape(2, -1)
    counts = matrix.reshape(-1).astype(np.int64)
    return np.repeat(pairs[0], counts), np.repeat(pairs[1], counts)


def bootstrap_bounds(
    samples: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], confidence: float, resamples: int, seed: int
) -> tuple[float, float, str]:
    """Bias-corrected and accelerated (BCa) bounds of a vectorised scalar statistic of paired samples; none
    where every resample gives the same value (every image right, say), which says nothing of how sure it is."""
    options = dict(paired=True, vectorized=True, n_resamples=resamples, batch=BATCH, confidence_level=confidence)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns of a degenerate statistic, handled below
        result = bootstrap(samples, statistic, method="BCa", rng=seed, **options)
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if np.ptp(result.bootstrap_distribution) == 0 or np.isnan(low) or np.isnan(high):
        return float("nan"), float("nan"), "none (every resample gives the same value)"
    return low, high, f"bootstrap BCa, {resamples} resamples of the images"


def class_proportion(hits: int, counted: int, confidence: float) -> Interval:
    """A class's precision or recall: Wilson's interval, or none where no image was counted (scikit-learn
    then reports 0)."""
    if counted == 0:
        return Interval(0.0, float("nan"), float("nan"), "none (no image)", confidence)
    return proportion_interval(hits, counted, confidence)


def f1_of(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def class_f1(hits: int, predicted: int, true: int, confidence: float) -> Interval:
    """A class's F1 with the interval joining its precision's and recall's, each at ``1 - (1 - confidence) / 2``."""
    each = 1 - (1 - confidence) / 2
    precision, recall = class_proportion(hits, predicted, each), class_proportion(hits, true, each)
    estimate = f1_of(precision.estimate, recall.estimate)
    if not (precision.defined and recall.defined):
        return Interval(estimate, float("nan"), float("nan"), "none (no image of the class, or none predicted)")
    low, high = f1_of(precision.low, recall.low), f1_of(precision.high, recall.high)
    return Interval(estimate, low, high, "Wilson bounds of precision and recall, 97.5% each", confidence)


def classification_intervals(
    matrix: np.ndarray, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED
) -> ClassificationIntervals:
    """The figures of the confusion matrix ``matrix`` (rows true, columns predicted) with their intervals.
    The bootstrap resamples the images the matrix counts, so it needs no more than the matrix."""
    matrix = np.asarray(matrix, dtype=np.int64)
    classes, images = len(matrix), int(matrix.sum())
    hits, predicted_count, true_count = np.diagonal(matrix), matrix.sum(axis=0), matrix.sum(axis=1)
    true, predicted = pairs_counted(matrix)
    macro = float(per_class_scores(true, predicted, classes)[-1])

    def macro_f1(true: np.ndarray, predicted: np.ndarray, axis: int = -1) -> np.ndarray:
        return per_class_scores(np.moveaxis(true, axis, -1), np.moveaxis(predicted, axis, -1), classes)[-1]

    low, high, method = float("nan"), float("nan"), "none (one image)"
    if images >= 2:
        low, high, method = bootstrap_bounds((true, predicted), macro_f1, confidence, resamples, seed)
    counts = zip(hits.tolist(), predicted_count.tolist(), true_count.tolist(), strict=True)
    return ClassificationIntervals(
        images=images,
        accuracy=proportion_interval(int(hits.sum()), images, confidence),
        macro_f1=Interval(macro, low, high, method, confidence),
        precision=[
            class_proportion(h, p, confidence) for h, p in zip(hits.tolist(), predicted_count.tolist(), strict=True)
        ],
        recall=[class_proportion(h, t, confidence) for h, t in zip(hits.tolist(), true_count.tolist(), strict=True)],
        f1=[class_f1(h, p, t, confidence) for h, p, t in counts],
    )
