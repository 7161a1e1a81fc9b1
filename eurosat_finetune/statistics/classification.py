"""The figures of a test with their 95% intervals: overall accuracy by Wilson's interval, and each class's
precision, recall and F1, and macro F1, by bootstrap over the test images (scipy.stats.bootstrap)."""

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


def labels_of(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (true, predicted) label of every image a confusion matrix counts (rows true, columns predicted)."""
    pairs = np.indices(matrix.shape).reshape(2, -1)
    counts = matrix.reshape(-1).astype(np.int64)
    return np.repeat(pairs[0], counts), np.repeat(pairs[1], counts)


def bootstrap_bounds(
    samples: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], confidence: float, resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """Bias-corrected and accelerated (BCa) bounds of a vectorised statistic of paired samples; where BCa
    is undefined (every resample gives the same value, e.g. a class always right) the percentile bounds."""
    options = dict(paired=True, vectorized=True, n_resamples=resamples, batch=BATCH, confidence_level=confidence)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns of the degenerate statistics handled below
        interval = bootstrap(samples, statistic, method="BCa", rng=seed, **options).confidence_interval
        low, high = np.atleast_1d(interval.low).copy(), np.atleast_1d(interval.high).copy()
        undefined = np.isnan(low) | np.isnan(high)
        if undefined.any():
            fallback = bootstrap(samples, statistic, method="percentile", rng=seed, **options).confidence_interval
            low[undefined] = np.atleast_1d(fallback.low)[undefined]
            high[undefined] = np.atleast_1d(fallback.high)[undefined]
    return low, high, "bootstrap BCa" if not undefined.any() else "bootstrap BCa (percentile where BCa is undefined)"


def classification_intervals(
    matrix: np.ndarray, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED
) -> ClassificationIntervals:
    """The figures of the confusion matrix ``matrix`` (rows true, columns predicted) with their intervals.
    The bootstrap resamples the images the matrix counts, so it needs no more than the matrix."""
    matrix = np.asarray(matrix, dtype=np.int64)
    classes, images = len(matrix), int(matrix.sum())
    accuracy = proportion_interval(int(np.trace(matrix)), images, confidence)
    true, predicted = labels_of(matrix)
    estimates = per_class_scores(true, predicted, classes)

    def statistic(true: np.ndarray, predicted: np.ndarray, axis: int = -1) -> np.ndarray:
        return per_class_scores(np.moveaxis(true, axis, -1), np.moveaxis(predicted, axis, -1), classes)

    if images >= 2:
        low, high, method = bootstrap_bounds((true, predicted), statistic, confidence, resamples, seed)
    else:  # nothing to resample: no interval
        low, high, method = np.full(len(estimates), np.nan), np.full(len(estimates), np.nan), "none (one image)"
    intervals = [
        Interval(float(e), float(lo), float(hi), method, confidence)
        for e, lo, hi in zip(estimates, low, high, strict=True)
    ]
    return ClassificationIntervals(
        images=images,
        accuracy=accuracy,
        macro_f1=intervals[-1],
        precision=intervals[:classes],
        recall=intervals[classes : 2 * classes],
        f1=intervals[2 * classes : 3 * classes],
    )
