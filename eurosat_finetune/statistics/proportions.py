"""A figure with its 95% interval, and the interval of a proportion (an accuracy: images right of images)."""

import math
from dataclasses import asdict, dataclass

from scipy.stats import binomtest

CONFIDENCE = 0.95
SIGNIFICANCE = 0.05  # a difference with p below it is called better or worse


@dataclass(frozen=True)
class Interval:
    """``estimate`` with its ``confidence`` interval ``[low, high]``, and how the interval was worked out;
    ``low`` and ``high`` are NaN where there is no interval (``method`` says why)."""

    estimate: float
    low: float
    high: float
    method: str
    confidence: float = CONFIDENCE

    @property
    def defined(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def as_dict(self) -> dict[str, float | str | None]:
        """Its fields; a bound there is none of as None, which JSON writes as null."""
        return {key: None if value != value else value for key, value in asdict(self).items()}  # NaN != NaN

    def bounds(self, digits: int = 4, scale: float = 1.0, sign: str = "") -> str:
        """``0.9803 to 0.9872``, or ``n/a`` where there is no interval."""
        if not self.defined:
            return "n/a"
        return f"{scale * self.low:{sign}.{digits}f} to {scale * self.high:{sign}.{digits}f}"


def proportion_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """The Wilson score interval of ``successes`` out of ``trials`` (scipy's ``binomtest``): unlike the
    normal approximation it stays inside [0, 1] and keeps its coverage near 0% and 100%, where accuracies
    on EuroSAT sit."""
    if trials <= 0:
        raise ValueError(f"a proportion needs at least one trial, got {trials}")
    bounds = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(successes / trials, float(bounds.low), float(bounds.high), "Wilson score", confidence)
