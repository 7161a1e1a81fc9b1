"""A figure with its 95% interval, and the interval of a proportion (an accuracy: images right of images)."""

from dataclasses import asdict, dataclass

from scipy.stats import binomtest

CONFIDENCE = 0.95
SIGNIFICANCE = 0.05  # a difference with p below it is called better or worse


@dataclass(frozen=True)
class Interval:
    """``estimate`` with its ``confidence`` interval ``[low, high]``, and how the interval was worked out."""

    estimate: float
    low: float
    high: float
    method: str
    confidence: float = CONFIDENCE

    def as_dict(self) -> dict[str, float | str | None]:
        """Its fields; a bound there is none of (no image to count) as None, which JSON writes as null."""
        return {key: None if value != value else value for key, value in asdict(self).items()}  # NaN != NaN

    def percent(self, digits: int = 2) -> str:
        """``98.40% (95% CI 98.03 to 98.72)``."""
        estimate, low, high = (f"{100 * value:.{digits}f}" for value in (self.estimate, self.low, self.high))
        return f"{estimate}% ({100 * self.confidence:g}% CI {low} to {high})"

    def plain(self, digits: int = 4) -> str:
        """``0.9840 (95% CI 0.9803 to 0.9872)``."""
        level = f"{100 * self.confidence:g}%"
        return f"{self.estimate:.{digits}f} ({level} CI {self.low:.{digits}f} to {self.high:.{digits}f})"


def proportion_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """The Wilson score interval of ``successes`` out of ``trials`` (scipy's ``binomtest``): unlike the
    normal approximation it stays inside [0, 1] and keeps its coverage near 0% and 100%, where accuracies
    on EuroSAT sit."""
    if trials <= 0:
        raise ValueError(f"a proportion needs at least one trial, got {trials}")
    bounds = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(successes / trials, float(bounds.low), float(bounds.high), "Wilson score", confidence)
