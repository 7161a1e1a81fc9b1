"""The intervals and comparisons of eurosat_finetune.statistics against figures worked out here by other means:
Wilson's formula and Newcombe's published intervals, scikit-learn's scores, an exact binomial sum, and a
plain bootstrap and the normal approximation for paired proportions."""

import math

import numpy as np
import pytest
from conftest import wilson_by_hand
from scipy.stats import beta
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


def macro_f1_by_hand(matrix: np.ndarray) -> float:
    """The mean over classes of 2 TP / (2 TP + FP + FN), a class never predicted nor present counting 0."""
    hits = np.diag(matrix)
    wrong = matrix.sum(axis=0) + matrix.sum(axis=1) - 2 * hits
    return float(np.mean(np.divide(2 * hits, 2 * hits + wrong, out=np.zeros(len(hits)), where=2 * hits + wrong > 0)))


def test_a_test_s_figures_are_scikit_learn_s_with_their_intervals() -> None:
    true, predicted = predictions(2000, 0.9)
    intervals = classification_intervals(confusion(true, predicted))
    precision, recall, f1, _ = precision_recall_fscore_support(true, predicted, zero_division=0)
    assert [i.estimate for i in intervals.precision] == pytest.approx(precision)
    assert [i.estimate for i in intervals.recall] == pytest.approx(recall)
    assert [i.estimate for i in intervals.f1] == pytest.approx(f1)
    assert intervals.macro_f1.estimate == pytest.approx(f1_score(true, predicted, average="macro"))
    assert macro_f1_by_hand(confusion(true, predicted)) == pytest.approx(intervals.macro_f1.estimate)
    right = int((true == predicted).sum())
    assert (intervals.accuracy.low, intervals.accuracy.high) == pytest.approx(wilson_by_hand(right, 2000))

    # macro F1: a plain percentile bootstrap, resampling the images here, gives the same interval within its noise
    rng = np.random.default_rng(1)
    picks = rng.integers(0, 2000, (1000, 2000))
    resampled = [macro_f1_by_hand(confusion(true[p], predicted[p])) for p in picks]  # sklearn's: 2 ms each
    assert (intervals.macro_f1.low, intervals.macro_f1.high) == pytest.approx(
        np.percentile(resampled, [2.5, 97.5]), abs=0.006
    )
    assert intervals.macro_f1.method == "bootstrap BCa, 2000 resamples of the images"
    # precision and recall are proportions: Wilson's interval of the images right of those predicted or true;
    # a class's F1 joins the two bounds taken at 97.5% each (z = 2.241403), F1 growing with both
    matrix = confusion(true, predicted)
    for c in range(10):
        hits, predicted_c, true_c = matrix[c, c], matrix[:, c].sum(), matrix[c].sum()
        assert (intervals.precision[c].low, intervals.precision[c].high) == pytest.approx(
            wilson_by_hand(hits, predicted_c)
        )
        assert (intervals.recall[c].low, intervals.recall[c].high) == pytest.approx(wilson_by_hand(hits, true_c))
        (p_low, p_high), (r_low, r_high) = (
            wilson_by_hand(hits, predicted_c, 2.241403),
            wilson_by_hand(hits, true_c, 2.241403),
        )
        f1_low, f1_high = 2 * p_low * r_low / (p_low + r_low), 2 * p_high * r_high / (p_high + r_high)
        assert (intervals.f1[c].low, intervals.f1[c].high) == pytest.approx((f1_low, f1_high), abs=1e-6)
    assert classification_intervals(confusion(true, predicted)) == intervals  # seeded: the same every time


def test_more_images_narrow_the_intervals_and_a_perfect_class_is_not_certain() -> None:
    widths = []
    for images in (500, 5000):
        intervals = classification_intervals(confusion(*predictions(images, 0.95)))
        widths.append(intervals.macro_f1.high - intervals.macro_f1.low)
    assert widths[1] < widths[0] / 2  # about 1 / sqrt(10)
    perfect = classification_intervals(np.diag([30, 20, 10]))
    # 10 of 10 right is not certainty: the class's F1 interval reaches down to the Wilson bounds' F1, 0.67
    low = wilson_by_hand(10, 10, 2.241403)[0]
    assert (perfect.f1[2].low, perfect.f1[2].estimate, perfect.f1[2].high) == pytest.approx((low, 1.0, 1.0))
    assert perfect.macro_f1.as_dict()["low"] is None  # every resample is perfect: the bootstrap cannot say
    assert perfect.macro_f1.method == "none (every resample gives the same value)"
    assert perfect.macro_f1.bounds() == "n/a"
    never = classification_intervals(np.array([[5, 0], [0, 0]]))  # class 1 neither true nor predicted
    assert never.recall[1].as_dict()["low"] is None and never.precision[1].estimate == 0
    assert never.f1[1].bounds() == "n/a"


def mcnemar_by_hand(only_a: int, only_b: int) -> float:
    """Twice the smaller tail of Binomial(only_a + only_b, 1/2), at most 1."""
    m, k = only_a + only_b, min(only_a, only_b)
    return min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2**m)


@pytest.mark.parametrize(("only_a", "only_b"), [(0, 0), (3, 0), (12, 25), (40, 40), (7, 1)])
def test_mcnemar_s_exact_test_is_a_binomial_sum(only_a: int, only_b: int) -> None:
    assert mcnemar_exact(only_a, only_b) == pytest.approx(mcnemar_by_hand(only_a, only_b), rel=1e-12)


def clopper_pearson(successes: int, trials: int) -> tuple[float, float]:
    """The exact 95% interval of a binomial proportion, from the beta distribution's quantiles."""
    low = 0.0 if successes == 0 else beta.ppf(0.025, successes, trials - successes + 1)
    high = 1.0 if successes == trials else beta.ppf(0.975, successes + 1, trials - successes)
    return low, high


def test_a_model_against_itself_differs_by_nothing_within_a_bound() -> None:
    correct = np.random.default_rng(0).random(5400) < 0.98
    same = compare_paired(correct, correct)
    assert (same.difference.estimate, same.p_value) == (0, 1)
    # no image told apart: at most 1 - 0.025^(1/n) of them could differ (Clopper-Pearson's bound of 0 of n)
    high = clopper_pearson(0, 5400)[1]
    assert (same.difference.low, same.difference.high) == pytest.approx((-high, high))
    assert same.verdict == "B and A are not distinguishable at n = 5400 images (McNemar p = 1)"


def test_a_better_model_is_found_better_with_the_exact_interval_of_its_gain() -> None:
    rng = np.random.default_rng(2)
    a = rng.random(5400) < 0.96
    b = a.copy()
    b[rng.choice(np.flatnonzero(~a), 60, replace=False)] = True  # 60 of A's errors put right
    b[rng.choice(np.flatnonzero(a), 20, replace=False)] = False  # 20 new ones
    result = compare_paired(a, b, names=("ViT", "Swin"))
    assert (result.only_a_correct, result.only_b_correct) == (20, 60)
    assert result.difference.estimate == pytest.approx(40 / 5400)
    assert result.p_value == pytest.approx(mcnemar_by_hand(20, 60), rel=1e-12)
    # B - A = (m / n)(2 theta - 1), theta the share of the 80 images told apart that B gets right
    low, high = clopper_pearson(60, 80)
    assert (result.difference.low, result.difference.high) == pytest.approx(
        (80 / 5400 * (2 * low - 1), 80 / 5400 * (2 * high - 1))
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


@pytest.mark.parametrize("only_a", range(0, 12))
def test_the_interval_leaves_0_out_exactly_when_mcnemar_says_so(only_a: int) -> None:
    for only_b in range(0, 25):
        if only_a + only_b == 0:
            continue
        a = np.array([True] * only_a + [False] * only_b + [True] * 50)
        b = np.array([False] * only_a + [True] * only_b + [True] * 50)
        result = compare_paired(a, b)
        assert (result.difference.low > 0 or result.difference.high < 0) == (result.p_value < 0.05), (only_a, only_b)


def test_different_image_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="5 and 4 images"):
        compare_paired(np.ones(5, bool), np.ones(4, bool))
