"""Two models tested on the same images, compared image by image: the difference in accuracy with its 95%
interval (bootstrap over the images) and McNemar's exact test, said in words."""

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import binomtest

from eurosat_finetune.statistics.classification import RESAMPLES, SEED, bootstrap_bounds
from eurosat_finetune.statistics.proportions import CONFIDENCE, Interval

SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class PairedComparison:
    """Model B against model A on the same ``images``."""

    images: int
    a_correct: int
    b_correct: int
    only_a_correct: int  # the discordant pairs McNemar's test counts
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


def compare_paired(
    a_correct: np.ndarray,
    b_correct: np.ndarray,
    names: tuple[str, str] = ("A", "B"),
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> PairedComparison:
    """Compare per-image correctness (booleans, the same images in the same order) of models A and B."""
    a_correct, b_correct = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    if a_correct.shape != b_correct.shape:
        raise ValueError(f"{len(a_correct)} and {len(b_correct)} images: compare the same images")
    images = len(a_correct)
    only_a, only_b = int(np.sum(a_correct & ~b_correct)), int(np.sum(b_correct & ~a_correct))
    gain = (only_b - only_a) / images
    if only_a + only_b == 0:  # the same answer on every image: no difference to resample
        difference = Interval(0.0, 0.0, 0.0, "none (no image told apart)", confidence)
    else:
        per_image = b_correct.astype(float) - a_correct.astype(float)

        def mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
            return values.mean(axis=axis)

        low, high, method = bootstrap_bounds((per_image,), mean, confidence, resamples, seed)
        difference = Interval(gain, float(low[0]), float(high[0]), f"paired {method}", confidence)
    p_value = mcnemar_exact(only_a, only_b)
    return PairedComparison(
        images=images,
        a_correct=int(a_correct.sum()),
        b_correct=int(b_correct.sum()),
        only_a_correct=only_a,
        only_b_correct=only_b,
        difference=difference,
        p_value=p_value,
        verdict=verdict(names, gain, p_value, images),
    )


def verdict(names: tuple[str, str], gain: float, p_value: float, images: int) -> str:
    """In words, by McNemar's test at the 5% level."""
    a, b = names
    if p_value >= SIGNIFICANCE or gain == 0:
        return f"{b} and {a} are not distinguishable at n = {images} images (McNemar p = {p_value:.3g})"
    better = "better" if gain > 0 else "worse"
    return f"{b} is {better} than {a} (McNemar p = {p_value:.3g}, {images} images)"
