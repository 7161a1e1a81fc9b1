"""A map's accuracy at labelled reference points: which map cell each point falls in, the error matrix of the
points (rows the map's class, columns the reference class), the accuracies at the points and, for a stratified
random sample of the map's classes, the area-adjusted estimates of
:mod:`eurosat_finetune.statistics.stratified_estimates` with the map's class areas as strata weights. For a map being
written (:class:`~eurosat_finetune.outputs.land_cover_maps.LandCoverMaps`) or one written earlier
(:func:`assess_written_map`)."""

import json
import logging
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from rasterio.transform import Affine

from eurosat_finetune.errors import UnreadableImageError, counted
from eurosat_finetune.outputs.class_areas import ClassAreas, class_areas
from eurosat_finetune.outputs.reference_points import ReferencePoints, read_reference_points
from eurosat_finetune.statistics.stratified_estimates import sample_accuracy, stratified_estimates

log = logging.getLogger(__name__)

Sampling = Literal["stratified", "other"]
OUTSIDE, NO_DATA = -1, -2  # a point's map class when it is off the map, or on a no-data cell
# A stratum of fewer points is flagged: its variance has under 4 degrees of freedom, so the normal quantile
# (1.96) makes its interval far too narrow (Student's t at 3 degrees is 3.18), and its accuracy can take
# only a few values. Olofsson et al. (2014) suggest 50 or more a stratum: 5 is a floor, not enough.
SMALL_STRATUM = 5


def map_classes_at(
    points: ReferencePoints, classes: np.ndarray, crs: Any, transform: Affine, nodata: int
) -> np.ndarray:
    """The map's class at each point: ``OUTSIDE`` off the map (or on a map without a CRS), ``NO_DATA`` on a
    no-data cell. A point on a cell's edge falls in the cell right of it and below it, as GDAL's pixels do."""
    if crs is None:
        return np.full(len(points), OUTSIDE)
    xs, ys = points.projected(crs)
    cols, rows = ~transform * (xs, ys)
    rows, cols = np.floor(rows), np.floor(cols)
    inside = np.isfinite(rows) & np.isfinite(cols)
    inside &= (rows >= 0) & (rows < classes.shape[0]) & (cols >= 0) & (cols < classes.shape[1])
    found = np.full(len(points), OUTSIDE)
    found[inside] = classes[rows[inside].astype(int), cols[inside].astype(int)]
    found[inside & (found == nodata)] = NO_DATA
    return found


@dataclass(frozen=True)
class MapAccuracy:
    """The assessment of one map: its points' classes on the map and its class areas."""

    class_names: list[str]
    points: ReferencePoints
    on_map: np.ndarray  # the map's class at each point, or OUTSIDE / NO_DATA
    areas: ClassAreas
    sampling: Sampling

    @property
    def used(self) -> np.ndarray:
        return self.on_map >= 0

    @cached_property
    def counts(self) -> np.ndarray:
        """``n_ij``: points of map class ``i`` and reference class ``j``."""
        k = len(self.class_names)
        counts = np.zeros((k, k), int)
        np.add.at(counts, (self.on_map[self.used], self.points.classes[self.used]), 1)
        return counts

    def named(self, where: int) -> list[str]:
        return [name for name, found in zip(self.points.names, self.on_map, strict=True) if found == where]

    def as_dict(self) -> dict[str, Any]:
        """What the map's sidecar records under ``accuracy``."""
        counts, names = self.counts, self.class_names
        at_points = sample_accuracy(counts)
        record: dict[str, Any] = {
            "reference_points": self.points.source,
            "sampling": self.sampling,
            "points": {
                "given": len(self.points),
                "used": int(self.used.sum()),
                "outside_map": self.named(OUTSIDE),
                "on_no_data": self.named(NO_DATA),
            },
            "error_matrix": {
                "rows": "map class",
                "columns": "reference class",
                "classes": names,
                "counts": counts.tolist(),
            },
            "at_points": {
                "overall": at_points.overall,
                "users": dict(zip(names, at_points.users, strict=True)),
                "producers": dict(zip(names, at_points.producers, strict=True)),
            },
            "area_adjusted": None,
        }
        if self.sampling != "stratified":
            record["area_adjusted_note"] = "not estimated: the points were not said to be a stratified random sample"
            return jsonable(record)
        mapped = self.areas.hectares if self.areas.hectares is not None else self.areas.cells
        unit = "hectares" if self.areas.hectares is not None else "cells"
        unsampled = [name for name, area, row in zip(names, mapped, counts, strict=True) if area and not row.sum()]
        if not self.used.any():
            record["area_adjusted_note"] = "not estimated: no point falls on the map's data"
            return jsonable(record)
        if unsampled:
            which = f"class {unsampled[0]} holds" if len(unsampled) == 1 else f"classes {', '.join(unsampled)} hold"
            record["area_adjusted_note"] = (
                f"not estimated: mapped {which} no reference points; a stratified sample needs points in every "
                "mapped class"
            )
            return jsonable(record)
        estimates = stratified_estimates(counts, np.array(mapped, float))
        small = self.small_strata()
        record["area_adjusted"] = {
            "method": "Olofsson et al. 2014, Remote Sensing of Environment 148:42-57 (stratified estimators)",
            "strata_weights": dict(zip(names, self.areas.shares, strict=True)),
            "small_strata": small,
            "small_strata_note": small_strata_note(small),
            "overall": estimates.overall.as_dict(),
            "users": {n: e.as_dict() for n, e in zip(names, estimates.users, strict=True)},
            "producers": {n: e.as_dict() for n, e in zip(names, estimates.producers, strict=True)},
            "proportions": {n: e.as_dict() for n, e in zip(names, estimates.proportions, strict=True)},
            unit: {n: e.as_dict() for n, e in zip(names, estimates.areas, strict=True)},
            "cell_proportions": estimates.cell_proportions.tolist(),
        }
        return jsonable(record)

    def small_strata(self) -> dict[str, int]:
        """The mapped classes whose strata hold fewer than ``SMALL_STRATUM`` points, with their points."""
        mapped = self.areas.hectares if self.areas.hectares is not None else self.areas.cells
        points = self.counts.sum(1)
        return {
            name: int(n)
            for name, area, n in zip(self.class_names, mapped, points, strict=True)
            if area and n < SMALL_STRATUM
        }

    def summary(self, map_name: str) -> str:
        """A few lines for the end of the run: points used and left out, the accuracies, the estimated areas."""
        record = self.as_dict()
        points = record["points"]
        lines = [
            f"Accuracy of {map_name} at {points['used']} of {points['given']} reference points "
            f"(sampling: {self.sampling})"
        ]
        if record["area_adjusted"] is None:
            lines.append(f"  overall at the points: {fixed(record['at_points']['overall'])}")
            lines.append(f"  area-adjusted: {record['area_adjusted_note']}")
            lines += [
                f"  {name}: user's {fixed(record['at_points']['users'][name])}, "
                f"producer's {fixed(record['at_points']['producers'][name])}"
                for name in self.class_names
                if self.counts[self.class_names.index(name)].sum() or self.counts[:, self.class_names.index(name)].sum()
            ]
            return "\n".join(lines)
        adjusted = record["area_adjusted"]
        unit = "hectares" if "hectares" in adjusted else "cells"
        lines.append(f"  overall (area-adjusted): {with_interval(adjusted['overall'])}")
        mapped = self.areas.hectares if self.areas.hectares is not None else self.areas.cells
        for name, on_map in zip(self.class_names, mapped, strict=True):
            area = adjusted[unit][name]
            if not area["estimate"] and not on_map:
                continue
            lines.append(
                f"  {name}: {unit} mapped {on_map:,.0f}, estimated {with_interval(area, 0)}; user's "
                f"{with_interval(adjusted['users'][name])}, producer's {with_interval(adjusted['producers'][name])}"
            )
        if adjusted["small_strata_note"]:
            lines.append(f"  {adjusted['small_strata_note']}")
        return "\n".join(lines)


def fixed(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def with_interval(figure: dict[str, Any], digits: int = 4) -> str:
    """``0.8800 +- 0.0740``: the estimate and the half-width of its 95% interval, as the paper gives them."""
    if figure["estimate"] is None:
        return "n/a"
    if figure["standard_error"] is None:  # the summary says why once (small_strata_note)
        return f"{figure['estimate']:,.{digits}f} (no interval)"
    return f"{figure['estimate']:,.{digits}f} +- {(figure['high'] - figure['estimate']):,.{digits}f}"


def small_strata_note(small: dict[str, int]) -> str | None:
    """What strata of few points do to the intervals, naming them: one point leaves the standard errors
    undefined (its variance divides by ``n - 1``), fewer than ``SMALL_STRATUM`` makes the intervals too narrow."""
    if not small:
        return None
    single = [name for name, n in small.items() if n == 1]
    few = ", ".join(f"{name} ({counted(n, 'point')})" for name, n in small.items())
    note = f"strata of fewer than {SMALL_STRATUM} points, too few for the normal approximation's intervals: {few}"
    if single:
        which = (
            f"a stratum of one point ({single[0]}) leaves"
            if len(single) == 1
            else (f"strata of one point ({', '.join(single)}) leave")
        )
        note = f"{which} the standard errors undefined; {note}"
    return note


def jsonable(value: Any) -> Any:
    """``value`` with NaN (what the sample cannot say) as None: JSON has no NaN."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def assess(
    classes: np.ndarray,
    class_names: list[str],
    nodata: int,
    crs: Any,
    transform: Affine,
    points: ReferencePoints,
    sampling: Sampling,
    areas: ClassAreas | None = None,
) -> MapAccuracy:
    """The accuracy of a map held in memory (its class indices, ``nodata`` where none, on its grid)."""
    areas = areas if areas is not None else class_areas(classes, class_names, nodata, crs, transform)
    on_map = map_classes_at(points, classes, crs, transform, nodata)
    return MapAccuracy(list(class_names), points, on_map, areas, sampling)


def assess_written_map(
    map_path: str | Path,
    points: str | Path | ReferencePoints,
    sampling: Sampling = "other",
    crs: str = "EPSG:4326",
    option: str = "points",
) -> MapAccuracy:
    """The accuracy of a ``<name>.classes.tif`` written by ``eurosat predict``, at ``points`` (a CSV or GeoJSON
    file, read against the map's class names, ``crs`` that of a CSV without a ``crs`` column; ``option`` names
    the file in errors), without mapping again."""
    try:
        with rasterio.open(map_path) as source:
            classes, tags = source.read(1), source.tags()
            grid = (source.crs, source.transform, int(source.nodata if source.nodata is not None else 255))
    except rasterio.RasterioIOError as err:
        raise UnreadableImageError(f"{map_path} cannot be read as a map ({err})") from None
    if "class_names" not in tags:
        raise UnreadableImageError(f"{map_path} has no class_names tag: give a .classes.tif of `eurosat predict`")
    class_names = json.loads(tags["class_names"])
    if not isinstance(points, ReferencePoints):
        points = read_reference_points(points, class_names, crs, option)
    return assess(classes, class_names, grid[2], grid[0], grid[1], points, sampling)


def unused_points(points: ReferencePoints, assessments: list[MapAccuracy]) -> dict[str, list[str]]:
    """The points no map used, named, by why: on no-data cells (of some map), or outside every map (the map,
    where there is one)."""
    found = np.array([accuracy.on_map for accuracy in assessments]).reshape(-1, len(points))
    unused = ~(found >= 0).any(0)
    on_no_data = (found == NO_DATA).any(0)
    outside = "outside the map" if len(assessments) == 1 else "outside every map"
    return {
        why: [name for name, left in zip(points.names, which, strict=True) if left]
        for why, which in (("on no-data cells", unused & on_no_data), (outside, unused & ~on_no_data))
    }


def unused_lines(points: ReferencePoints, assessments: list[MapAccuracy]) -> list[str]:
    """A line for each reason some points were not used, naming the first ten of them."""
    lines = []
    for why, names in unused_points(points, assessments).items():
        if names:
            shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            lines.append(f"{points.source}: {counted(len(names), 'point')} {why}, not used: {shown}")
    return lines


def report(points: ReferencePoints, assessments: dict[str, MapAccuracy]) -> None:
    """At the end of a run: each map's accuracy (printed), and a warning naming the points no map could use."""
    for name, accuracy in assessments.items():
        print(accuracy.summary(name))
    for line in unused_lines(points, list(assessments.values())):
        log.warning("%s", line)
