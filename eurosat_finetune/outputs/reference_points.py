"""Labelled reference points for a map's accuracy, read and checked before any mapping starts: a CSV with
columns ``x``, ``y``, ``class`` (one of the map's class names, the model's labels, or its index) and optionally
``crs`` (else the CRS given, EPSG:4326 by default), or GeoJSON points (lon/lat, EPSG:4326) with a ``class``
property. Each point keeps a name its user finds it by: ``line N`` of the CSV, ``feature N`` (and its ``id``) of
the GeoJSON."""

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from eurosat_finetune.errors import ReferencePointsError

OPTION = "maps.reference_points"
COLUMNS = ("x", "y", "class")
GEOJSON_SUFFIXES = (".geojson", ".json")


@dataclass(frozen=True)
class ReferencePoints:
    """Points with their reference class (an index into the map's classes), each in its own CRS."""

    source: str
    names: list[str]  # how the file names each point: "line 5", "feature 3 (id p3)"
    x: np.ndarray
    y: np.ndarray
    classes: np.ndarray
    crs: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def projected(self, target: Any) -> tuple[np.ndarray, np.ndarray]:
        """The points' coordinates in ``target`` (a rasterio or pyproj CRS), x then y (easting, or longitude)."""
        target_crs = CRS.from_user_input(target.to_wkt() if hasattr(target, "to_wkt") else target)
        xs, ys = np.full(len(self), np.nan), np.full(len(self), np.nan)
        for source in sorted(set(self.crs)):
            own = np.array([crs == source for crs in self.crs])
            transformer = Transformer.from_crs(CRS.from_user_input(source), target_crs, always_xy=True)
            xs[own], ys[own] = transformer.transform(self.x[own], self.y[own], errcheck=False)
        return xs, ys


def read_reference_points(
    path: str | Path, class_names: list[str], default_crs: str = "EPSG:4326", option: str = OPTION
) -> ReferencePoints:
    """Read and check every point of ``path``; raise :class:`ReferencePointsError` (one line naming the file as
    ``option`` gave it, the line or feature, and what to do) on a file that cannot be read, a missing column or
    property, a class the map does not have, a coordinate that is no number, or a CRS pyproj does not know."""
    path, named = Path(path), f"{option}={path}"
    if not path.is_file():
        raise ReferencePointsError(
            f"{named}: no such file; give a CSV with columns x, y, class (and crs) or a GeoJSON of points"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ReferencePointsError(f"{named} cannot be read ({err}); give a CSV or GeoJSON file") from None
    geojson = path.suffix.lower() in GEOJSON_SUFFIXES
    rows = geojson_rows(named, text) if geojson else csv_rows(named, text, default_crs)
    if not rows:
        raise ReferencePointsError(f"{named} holds no points")
    names, xs, ys, classes, crss = [], [], [], [], []
    for name, x, y, label, crs in rows:
        where = f"{named}, {name}"
        names.append(name)
        xs.append(number(x, "x", where))
        ys.append(number(y, "y", where))
        classes.append(class_index(label, class_names, where))
        crss.append(crs)
    for crs in sorted(set(crss)):
        try:
            CRS.from_user_input(crs)
        except CRSError:
            first = names[crss.index(crs)]
            given = " (given for points without a crs column)" if crs == default_crs and not geojson else ""
            raise ReferencePointsError(
                f"{named}, {first}: crs {crs!r}{given} is not a CRS pyproj knows; give e.g. EPSG:4326 or EPSG:32632"
            ) from None
    return ReferencePoints(str(path), names, np.array(xs), np.array(ys), np.array(classes, int), crss)


Row = tuple[str, Any, Any, Any, str]


def csv_rows(named: str, text: str, default_crs: str) -> list[Row]:
    reader = csv.DictReader(text.splitlines())
    columns = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
    missing = [column for column in COLUMNS if column not in columns]
    if missing:
        raise ReferencePointsError(
            f"{named} has no column {', '.join(missing)} (its columns: {', '.join(columns) or 'none'}); "
            "give x, y, class and, for coordinates other than lon/lat (EPSG:4326), crs"
        )
    rows = []
    for line, row in enumerate(reader, start=2):  # the header is line 1
        crs = (row.get(columns["crs"]) or "").strip() if "crs" in columns else ""
        values = (row.get(columns[column]) for column in COLUMNS)
        rows.append((f"line {line}", *values, crs or default_crs))
    return rows


def geojson_rows(named: str, text: str) -> list[Row]:
    try:
        document = json.loads(text)
    except ValueError as err:
        raise ReferencePointsError(f"{named} is not JSON ({err}); give a GeoJSON FeatureCollection") from None
    features = document.get("features") if isinstance(document, dict) else None
    if isinstance(document, dict) and document.get("type") == "Feature":
        features = [document]
    if not isinstance(features, list):
        raise ReferencePointsError(f"{named} is not a GeoJSON FeatureCollection of points")
    rows = []
    for i, feature in enumerate(features):
        name = f"feature {i}" + (f" (id {feature['id']})" if isinstance(feature, dict) and "id" in feature else "")
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        if not isinstance(geometry, dict) or geometry.get("type") != "Point":
            kind = geometry.get("type") if isinstance(geometry, dict) else "no geometry"
            raise ReferencePointsError(f"{named}, {name} is {kind}, not a Point; give points only")
        properties = feature.get("properties") or {}
        if "class" not in properties:
            raise ReferencePointsError(f"{named}, {name} has no 'class' property; give each point its class")
        x, y, *_ = [*(geometry.get("coordinates") or []), None, None]
        rows.append((name, x, y, properties["class"], "EPSG:4326"))
    return rows


def number(value: Any, what: str, where: str) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        result = float("nan")
    if not np.isfinite(result):
        raise ReferencePointsError(f"{where}: {what} {value!r} is not a number")
    return result


def class_index(label: Any, class_names: list[str], where: str) -> int:
    """A class given by its name (one of the map's classes) or its index."""
    text = str(label).strip()
    if text in class_names:
        return class_names.index(text)
    if text.isdigit() and int(text) < len(class_names):
        return int(text)
    raise ReferencePointsError(
        f"{where}: class {text!r} is not one of the map's classes ({', '.join(class_names)}); give a class name or "
        f"its index, 0 to {len(class_names) - 1}"
    )
