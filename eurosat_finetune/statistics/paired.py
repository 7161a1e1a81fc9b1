"""Two models tested on the same images, compared image by image: the difference in accuracy with its 95%
interval and McNemar's exact test, said in words.

Only the images one model gets right and the other wrong (the discordant images, ``m`` of the ``n``) tell
the two apart. If neither is better, each is B's with probability 1/2: McNemar's exact test is a binomial
test of B's count among them. The interval of the difference is the exact (Clopper-Pearson) interval of that
probability ``θ``, as B - A = (m / n)(2θ - 1): it is conditional on ``m``, and agrees with the test (it
leaves out 0 exactly when p < 0.05). With no discordant image, ``m / n`` itself is bounded instead: its exact
upper bound with none of ``n`` seen."""

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import binomtest

from eurosat_finetune.statistics.proportions import CONFIDENCE, SIGNIFICANCE, Interval


@dataclass(frozen=True)
class PairedComparison:
    """Model B against model A on the same ``images``."""

    images: int
    a_correct: int
    b_correct: int
    only_a_correct: int  # the discordant images McNemar's test counts
    only_b_correct: int
    difference: Interval  # accuracy of B less that of A
    p_value: float  # McNemar's exact test, two-sided
    verdict: str

    def as_dict(self) -> dict:
        return {**asdict(self), "difference": self.difference.as_dict()}


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """McNemar's exact test: under "neither is better" each image one model gets right and the other
    wrong is B's with probability 1/2, so the count is binomial; 1 with no such image."""
    discordant = only_a + only_b
    return 1.0 if discordant == 0 else float(binomtest(only_b, discordant, 0.5).pvalue)


def difference_interval(only_a: int, only_b: int, images: int, confidence: float = CONFIDENCE) -> Interval:
    """B's accuracy less A's with its interval, exact and conditional on the discordant count (above)."""
    discordant = only_a + only_b
    gain = (only_b - only_a) / images
    if discordant == 0:
        bound = 1 - ((1 - confidence) / 2) ** (1 / images)  # Clopper-Pearson upper bound of 0 of n
        return Interval(0.0, -bound, bound, "exact bound on the images told apart (none of them)", confidence)
    theta = binomtest(only_b, discordant).proportion_ci(confidence_level=confidence, method="exact")
    scale = discordant / images
    low, high = scale * (2 * theta.low - 1), scale * (2 * theta.high - 1)
    return Interval(gain, float(low), float(high), "exact, conditional on the images told apart", confidence)


def compare_paired(
    a_correct: np.ndarray,
    b_correct: np.ndarray,
    names: tuple[str, str] = ("A", "B"),
    confidence: float = CONFIDENCE,
) -> PairedComparison:
    """Compare per-image correctness (booleans, the same images in the same order) of models A and B."""
    a_correct, b_correct = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    if a_correct.shape != b_correct.shape:
        raise ValueError(f"{len(a_correct)} and {len(b_correct)} images: compare the same images")
    images = len(a_correct)
    only_a, only_b = int(np.sum(a_correct & ~b_correct)), int(np.sum(b_correct & ~a_correct))
    p_value = mcnemar_exact(only_a, only_b)
    return PairedComparison(
        images=images,
        a_correct=int(a_correct.sum()),
        b_correct=int(b_correct.sum()),
        only_a_correct=only_a,
        only_b_correct=only_b,
        difference=difference_interval(only_a, only_b, images, confidence),
        p_value=p_value,
        verdict=verdict(names, only_b - only_a, p_value, images),
    )


def verdict(names: tuple[str, str], gain: int, p_value: float, images: int) -> str:
    """In words, by McNemar's test at the 5% level."""
    a, b = names
    if p_value >= SIGNIFICANCE or gain == 0:
        return f"{b} and {a} are not distinguishable at n = {images} images (McNemar p = {p_value:.3g})"
    better = "better" if gain > 0 else "worse"
    return f"{b} is {better} than {a} (McNemar p = {p_value:.3g}, {images} images)"
