"""A map's accuracy and its classes' areas from reference samples: the error matrix of sample counts ``n_ij``
(rows the map's class, columns the reference class) and, for a stratified random sample whose strata are the
map's classes, the area-adjusted estimators of Olofsson et al. (2014), "Good practices for estimating area
and assessing accuracy of land change", Remote Sensing of Environment 148: 42-57 (section 4 and the worked
example of section 5), each with its standard error and 95% interval. Plain arrays in, plain numbers out
(NumPy and scipy.stats)."""

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from eurosat_finetune.statistics.proportions import CONFIDENCE, Interval

METHOD = "Olofsson et al. 2014 (stratified estimator, normal approximation)"


@dataclass(frozen=True)
class Estimate(Interval):
    """An area-adjusted figure: its ``estimate``, ``standard_error`` and the normal interval
    ``estimate +- z * standard_error`` (not clipped to [0, 1], as the paper gives it); NaN where the sample
    cannot say (a stratum of one point has no variance)."""

    standard_error: float = math.nan


def estimate(value: float, standard_error: float, confidence: float = CONFIDENCE) -> Estimate:
    half = float(norm.ppf(0.5 + confidence / 2)) * standard_error
    return Estimate(float(value), float(value - half), float(value + half), METHOD, confidence, float(standard_error))


@dataclass(frozen=True)
class SampleAccuracy:
    """The accuracies at the points themselves (no weighting): what any sample gives, but an estimate of the
    map's accuracy only where the points were drawn at random over the map with equal probability."""

    overall: float
    users: list[float]  # per map class: right of its points (NaN where none)
    producers: list[float]  # per reference class: right of its points (NaN where none)


def sample_accuracy(counts: np.ndarray) -> SampleAccuracy:
    n = np.asarray(counts, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        users = np.diag(n) / n.sum(1)
        producers = np.diag(n) / n.sum(0)
    overall = float(np.trace(n) / n.sum()) if n.sum() else math.nan
    return SampleAccuracy(overall, users.tolist(), producers.tolist())


@dataclass(frozen=True)
class StratifiedEstimates:
    """Olofsson et al. (2014)'s estimates for a sample stratified by the map's classes: ``proportions[j]`` is
    the share of the area whose reference class is ``j``; ``areas`` the same times the mapped area; ``users[i]``
    the share of map class ``i``'s area that is ``i``, ``producers[j]`` the share of reference class ``j``'s
    area mapped ``j``, ``overall`` the share of the area mapped right."""

    overall: Estimate
    users: list[Estimate]
    producers: list[Estimate]
    proportions: list[Estimate]
    areas: list[Estimate]
    cell_proportions: np.ndarray  # p_ij: the estimated area proportions of the error matrix's cells


def stratified_estimates(
    counts: np.ndarray, map_areas: np.ndarray, confidence: float = CONFIDENCE
) -> StratifiedEstimates:
    """``counts[i, j]``: points of map class ``i`` whose reference class is ``j``; ``map_areas[i]``: the area
    the map gives class ``i`` (any unit; the areas are returned in it), whose shares are the strata weights
    ``W_i``. A stratum with area but no points leaves its row unknown: refused (the estimates would leave
    its area out)."""
    n = np.asarray(counts, float)
    mapped = np.asarray(map_areas, float)
    if n.ndim != 2 or n.shape[0] != n.shape[1] or mapped.shape != (n.shape[0],):
        raise ValueError(f"counts must be k x k and map_areas k long, got {n.shape} and {mapped.shape}")
    row_totals = n.sum(1)
    empty = np.flatnonzero((mapped > 0) & (row_totals == 0))
    if empty.size:
        raise ValueError(f"map classes {empty.tolist()} have area but no sample points: every stratum needs some")
    total = mapped.sum()
    if not total > 0:
        raise ValueError("the map gives no class any area")
    weights = mapped / total  # W_i
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(row_totals[:, None] > 0, n / row_totals[:, None], 0.0)  # n_ij / n_i.
        p = weights[:, None] * share  # p_ij
        column = p.sum(0)  # p_.j
        users = np.diag(p) / p.sum(1)
        producers = np.diag(p) / column
        overall = np.trace(p)
        degrees = row_totals - 1  # n_i. - 1: a stratum of one point has no variance (NaN)
        cell_variance = np.where(
            weights[:, None] > 0, weights[:, None] ** 2 * share * (1 - share) / degrees[:, None], 0
        )
        column_se = np.sqrt(cell_variance.sum(0))
        user_variance = users * (1 - users) / degrees
        overall_se = math.sqrt(np.nansum(np.where(weights > 0, weights**2 * user_variance, 0)))
        if np.any((weights > 0) & (degrees < 1)):
            overall_se = math.nan
        producer_se = []
        for j in range(n.shape[0]):  # the paper's eq. 7 over N^2: N_i./N = W_i, N^_.j/N = p_.j
            others = sum(cell_variance[i, j] for i in range(n.shape[0]) if i != j)
            own = weights[j] ** 2 * (1 - producers[j]) ** 2 * user_variance[j] if weights[j] > 0 else 0.0
            producer_se.append(math.sqrt((own + producers[j] ** 2 * others) / column[j] ** 2))
    return StratifiedEstimates(
        overall=estimate(overall, overall_se, confidence),
        users=[estimate(u, math.sqrt(v), confidence) for u, v in zip(users, user_variance, strict=True)],
        producers=[estimate(a, s, confidence) for a, s in zip(producers, producer_se, strict=True)],
        proportions=[estimate(c, s, confidence) for c, s in zip(column, column_se, strict=True)],
        areas=[estimate(c * total, s * total, confidence) for c, s in zip(column, column_se, strict=True)],
        cell_proportions=p,
    )
