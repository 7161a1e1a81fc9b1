"""A figure over training seeds: its mean with a Student t interval, and whether two configurations differ
(a paired t-test on the seeds both ran, where they share at least two, else Welch's), said in words."""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import ttest_1samp, ttest_ind, ttest_rel

from eurosat_finetune.statistics.proportions import CONFIDENCE, SIGNIFICANCE, Interval

NO_SPREAD = "cannot tell: no spread over seeds"


@dataclass(frozen=True)
class SeedSummary:
    """One configuration's figure over ``n`` seeds: mean, sample standard deviation (n - 1) and the mean's
    Student t interval. With one seed there is no spread to measure: the standard deviation and the
    interval's ends are NaN."""

    n: int
    mean: float
    std: float
    interval: Interval


@dataclass(frozen=True)
class SeedComparison:
    """Configuration ``b`` against ``a``: the difference ``b - a`` (the mean paired difference, or the
    difference of the means) with its t interval, the two-sided p-value, and the verdict in words. Paired,
    ``n_a == n_b`` is the number of seeds in common and ``left_out_a``/``left_out_b`` the seeds only one ran.
    Where the t-test is undefined (one seed, or no spread) the interval's ends and the p-value are NaN."""

    a: str
    b: str
    paired: bool
    n_a: int
    n_b: int
    difference: Interval
    p_value: float
    verdict: str
    shared: int = 0  # seeds both ran
    left_out_a: tuple[int, ...] = ()
    left_out_b: tuple[int, ...] = ()

    def pairing(self) -> str:
        """How the runs were matched, in words: ``paired on the 3 seeds in common (left out: A's 3; B's 4, 5)``."""
        if not self.paired:
            if self.shared == 0:
                return "Welch: no seed in common"
            return f"Welch: {self.shared} seed{'s' if self.shared > 1 else ''} in common, too few to pair"
        if not self.left_out_a and not self.left_out_b:
            return f"paired on the same {self.n_a} seeds"
        left = "; ".join(
            f"{name}'s {', '.join(map(str, seeds))}"
            for name, seeds in ((self.a, self.left_out_a), (self.b, self.left_out_b))
            if seeds
        )
        return f"paired on the {self.n_a} seeds in common (left out: {left})"


def no_spread(values: np.ndarray) -> bool:
    """All equal, up to rounding: accuracies are ratios, and 0.35 - 0.2 is not 0.25 - 0.1 in floating point."""
    return bool(np.ptp(values) <= 1e-12)


def seed_summary(values: list[float], confidence: float = CONFIDENCE) -> SeedSummary:
    """Mean, standard deviation and the mean's t interval (``ttest_1samp(...).confidence_interval()``)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("a seed summary needs at least one value")
    mean = float(data.mean())
    if data.size == 1:
        return SeedSummary(1, mean, float("nan"), Interval(mean, float("nan"), float("nan"), "one seed", confidence))
    if no_spread(data):  # every seed gave the same figure: scipy warns and divides by zero; the interval is the point
        return SeedSummary(int(data.size), mean, 0.0, Interval(mean, mean, mean, "Student t", confidence))
    std = float(data.std(ddof=1))
    bounds = ttest_1samp(data, popmean=0).confidence_interval(confidence_level=confidence)
    interval = Interval(mean, float(bounds.low), float(bounds.high), "Student t", confidence)
    return SeedSummary(int(data.size), mean, std, interval)


def compare_seeds(
    a: Mapping[int, float], b: Mapping[int, float], names: tuple[str, str] = ("A", "B"), confidence: float = CONFIDENCE
) -> SeedComparison:
    """``b`` against ``a``, each a figure per seed. Where they share at least two seeds, the runs of those
    seeds are paired (``ttest_rel``: a seed's data order and initial weights are shared, so their noise
    cancels) and the others left out; otherwise all runs are two independent samples of unequal variance
    (Welch, ``ttest_ind(equal_var=False)``)."""
    name_a, name_b = names
    common = sorted(set(a) & set(b))
    paired = len(common) >= 2  # one pair has no spread to measure: Welch's on all runs says more
    xa = np.array([a[s] for s in common] if paired else list(a.values()), dtype=float)
    xb = np.array([b[s] for s in common] if paired else list(b.values()), dtype=float)
    method = "paired t" if paired else "Welch t"
    estimate = float((xb - xa).mean() if paired else xb.mean() - xa.mean())
    flat = min(xa.size, xb.size) >= 2 and (no_spread(xb - xa) if paired else no_spread(xa) and no_spread(xb))
    if min(xa.size, xb.size) < 2 or flat:
        # one seed, or no spread: the t statistic is 0/0 or infinite (scipy warns), so no interval and no p
        low = high = p_value = float("nan")
    else:
        test = ttest_rel(xb, xa) if paired else ttest_ind(xb, xa, equal_var=False)
        bounds = test.confidence_interval(confidence_level=confidence)
        low, high, p_value = float(bounds.low), float(bounds.high), float(test.pvalue)
    difference = Interval(estimate, low, high, method, confidence)
    return SeedComparison(
        name_a,
        name_b,
        paired,
        int(xa.size),
        int(xb.size),
        difference,
        p_value,
        NO_SPREAD if flat else verdict(names, estimate, p_value, xa.size, xb.size),
        shared=len(common),
        left_out_a=tuple(sorted(set(a) - set(common))) if paired else (),
        left_out_b=tuple(sorted(set(b) - set(common))) if paired else (),
    )


def verdict(names: tuple[str, str], difference: float, p_value: float, n_a: int, n_b: int) -> str:
    """``B is better than A``, ``B is worse than A``, or ``A and B are not distinguishable at n = 3 seeds``."""
    name_a, name_b = names
    if p_value < SIGNIFICANCE and difference != 0:  # NaN (one seed) compares False: not distinguishable
        return f"{name_b} is {'better' if difference > 0 else 'worse'} than {name_a}"
    n = f"{n_a}" if n_a == n_b else f"{n_a} and {n_b}"
    return f"{name_a} and {name_b} are not distinguishable at n = {n} seed{'s' if max(n_a, n_b) > 1 else ''}"
