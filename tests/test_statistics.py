"""The intervals and comparisons of eurosat_finetune.statistics against figures worked out here by other means:
Wilson's formula and Newcombe's published intervals, scikit-learn's scores, an exact binomial sum, and a
plain bootstrap and the normal approximation for paired proportions."""

import math

import numpy as np
import pytest
from conftest import wilson_by_hand
from sklearn.metrics import f1_score, precision_recall_fscore_support

from eurosat_finetune.statistics.classification import classification_intervals
from eurosat_finetune.statistics.paired import compare_paired, mcnemar_exact
from eurosat_finetune.statistics.proportions import proportion_interval


@pytest.mark.parametrize(
    ("right", "images", "published"),
    # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (score interval, no correction)
    [(81, 263, (0.2553, 0.3662)), (15, 148, (0.0624, 0.1605)), (0, 20, (0.0, 0.1611)), (1, 29, (0.0061, 0.1718))],
)
def test_an_accuracy_s_interval_is_wilson_s(right: int, images: int, published: tuple[float, float]) -> None:
    interval = proportion_interval(right, images)
    assert (interval.low, interval.high) == pytest.approx(published, abs=6e-5)
    assert (interval.low, interval.high) == pytest.approx(wilson_by_hand(right, images), abs=1e-7)
    assert interval.estimate == right / images and interval.method == "Wilson score"


def test_a_proportion_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one trial"):
        proportion_interval(0, 0)


def predictions(images: int, accuracy: float, classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, classes, images)
    return true, np.where(rng.random(images) < accuracy, true, rng.integers(0, classes, images))


def confusion(true: np.ndarray, predicted: np.ndarray, classes: int = 10) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


def test_a_test_s_figures_are_scikit_learn_s_with_bootstrap_intervals() -> None:
    true, predicted = predictions(2000, 0.9)
    intervals = classification_intervals(confusion(true, predicted))
    precision, recall, f1, _ = precision_recall_fscore_support(true, predicted, zero_division=0)
    assert [i.estimate for i in intervals.precision] == pytest.approx(precision)
    assert [i.estimate for i in intervals.recall] == pytest.approx(recall)
    assert [i.estimate for i in intervals.f1] == pytest.approx(f1)
    assert intervals.macro_f1.estimate == pytest.approx(f1_score(true, predicted, average="macro"))
    right = int((true == predicted).sum())
    assert (intervals.accuracy.low, intervals.accuracy.high) == pytest.approx(wilson_by_hand(right, 2000))

    # a plain percentile bootstrap of macro F1, resampling the images here: the same interval within its noise
    rng = np.random.default_rng(1)
    picks = rng.integers(0, 2000, (1000, 2000))
    resampled = [f1_score(true[p], predicted[p], average="macro") for p in picks]
    assert (intervals.macro_f1.low, intervals.macro_f1.high) == pytest.approx(
        np.percentile(resampled, [2.5, 97.5]), abs=0.006
    )
    for figure in [intervals.macro_f1, *intervals.precision, *intervals.recall, *intervals.f1]:
        assert figure.low <= figure.estimate <= figure.high and figure.method == "bootstrap BCa"
    assert classification_intervals(confusion(true, predicted)) == intervals  # seeded: the same every time


def test_more_images_narrow_the_intervals_and_a_perfect_class_stays_at_one() -> None:
    widths = []
    for images in (500, 5000):
        intervals = classification_intervals(confusion(*predictions(images, 0.95)))
        widths.append(intervals.macro_f1.high - intervals.macro_f1.low)
    assert widths[1] < widths[0] / 2  # about 1 / sqrt(10)
    perfect = classification_intervals(np.diag([30, 20, 10]))
    assert all((f.low, f.estimate, f.high) == (1.0, 1.0, 1.0) for f in perfect.f1)
    assert "percentile where BCa is undefined" in perfect.macro_f1.method


def mcnemar_by_hand(only_a: int, only_b: int) -> float:
    """Twice the smaller tail of Binomial(only_a + only_b, 1/2), at most 1."""
    m, k = only_a + only_b, min(only_a, only_b)
    return min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2**m)


@pytest.mark.parametrize(("only_a", "only_b"), [(0, 0), (3, 0), (12, 25), (40, 40), (7, 1)])
def test_mcnemar_s_exact_test_is_a_binomial_sum(only_a: int, only_b: int) -> None:
    assert mcnemar_exact(only_a, only_b) == pytest.approx(mcnemar_by_hand(only_a, only_b), rel=1e-12)


def test_a_model_against_itself_differs_by_nothing() -> None:
    correct = np.random.default_rng(0).random(5400) < 0.98
    same = compare_paired(correct, correct)
    assert (same.difference.estimate, same.difference.low, same.difference.high, same.p_value) == (0, 0, 0, 1)
    assert same.verdict == "B and A are not distinguishable at n = 5400 images (McNemar p = 1)"


def test_a_better_model_is_found_better_with_the_paired_interval_of_its_gain() -> None:
    rng = np.random.default_rng(2)
    a = rng.random(5400) < 0.96
    b = a.copy()
    b[rng.choice(np.flatnonzero(~a), 60, replace=False)] = True  # 60 of A's errors put right
    b[rng.choice(np.flatnonzero(a), 20, replace=False)] = False  # 20 new ones
    result = compare_paired(a, b, names=("ViT", "Swin"))
    assert (result.only_a_correct, result.only_b_correct) == (20, 60)
    assert result.difference.estimate == pytest.approx(40 / 5400)
    assert result.p_value == pytest.approx(mcnemar_by_hand(20, 60), rel=1e-12)
    # the normal approximation of a paired difference of proportions (e.g. Agresti, Categorical Data
    # Analysis, 10.1.1): se = sqrt(b + c - (c - b)^2 / n) / n
    se = math.sqrt(80 - 40**2 / 5400) / 5400
    assert (result.difference.low, result.difference.high) == pytest.approx(
        (40 / 5400 - 1.96 * se, 40 / 5400 + 1.96 * se), abs=0.0007
    )
    assert result.verdict.startswith("Swin is better than ViT (McNemar p = ")
    worse = compare_paired(b, a, names=("Swin", "ViT"))
    assert worse.verdict.startswith("ViT is worse than Swin") and worse.difference.high < 0
    a, b = np.ones(400, bool), np.ones(400, bool)
    a[:3], b[3:9] = False, False  # 6 images right only with A, 3 only with B: p = 0.51
    close = compare_paired(a, b)
    assert (
        close.verdict == f"B and A are not distinguishable at n = 400 images (McNemar p = {mcnemar_by_hand(6, 3):.3g})"
    )


def test_different_image_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="5 and 4 images"):
        compare_paired(np.ones(5, bool), np.ones(4, bool))
