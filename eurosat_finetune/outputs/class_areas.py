"""How much of a map each class covers, on the map's own grid in its CRS: cells, hectares and share of the
mapped area, no-data cells left out. Every area is on the CRS's ellipsoid. In a projected CRS each cell's
corners are taken to longitude and latitude (pyproj) and on into the ellipsoid's equal-area cylindrical
projection (longitude and Snyder's authalic function q), where the cell's quadrilateral has its area on the
ellipsoid: right where the projection's plane is far from the ground (Web Mercator's cells at 60 N cover a
quarter of their plane area) and free of UTM's scale error (up to ~0.1%). In a geographic CRS a cell is
bounded by two meridians and two parallels, and its area is the closed form of the band between two
latitudes, the same for every cell of a row."""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyproj import CRS, Transformer
from rasterio.transform import Affine

SQUARE_METRES_PER_HECTARE = 10_000.0


def authalic_q(inverse_flattening: float, lat: np.ndarray) -> np.ndarray:
    """Snyder's (1987, eq. 3-12) authalic function ``q`` of latitude ``lat`` (radians) on an ellipsoid: the
    ellipsoid's equal-area cylindrical projection is ``x = a lon``, ``y = a q / 2``."""
    e2 = 0.0 if not inverse_flattening else (2 - 1 / inverse_flattening) / inverse_flattening
    s = np.sin(lat)
    if e2 == 0:  # a sphere: the limit of the ellipsoid's formula
        return 2 * s
    e = math.sqrt(e2)
    return (1 - e2) * (s / (1 - e2 * s**2) + np.arctanh(e * s) / e)


def ellipsoid_band_area(a: float, inverse_flattening: float, lat1: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """The area (square units of ``a``) between latitudes ``lat1`` and ``lat2`` (radians) per radian of
    longitude on an ellipsoid of semi-major axis ``a``: ``a^2 / 2 * |q(lat2) - q(lat1)|``. Exact for a cell
    bounded by parallels, which are not geodesics: a polygon of geodesic edges (pyproj's ``Geod``) differs
    from it by a sliver on each parallel edge."""
    return a**2 / 2 * np.abs(authalic_q(inverse_flattening, lat2) - authalic_q(inverse_flattening, lat1))


def cell_areas(crs: Any, transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    """The area in square metres of each cell of a ``(rows, cols)`` grid (an array that broadcasts to
    ``shape``: one column in a geographic CRS, whose rows share an area), and how it was worked out. Raises
    ``ValueError`` for a grid whose cells it cannot measure (no CRS; a rotated geographic grid; corners that
    pyproj cannot take to longitude and latitude)."""
    if crs is None:
        raise ValueError("the map has no CRS")
    crs = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    height, width = shape
    ellipsoid = crs.ellipsoid
    if crs.is_geographic:
        if transform.b or transform.d:
            raise ValueError("the map's geographic grid is rotated")
        to_radians = crs.axis_info[0].unit_conversion_factor
        edges = np.clip((transform.f + transform.e * np.arange(height + 1)) * to_radians, -math.pi / 2, math.pi / 2)
        span = abs(transform.a) * to_radians
        band = ellipsoid_band_area(ellipsoid.semi_major_metre, ellipsoid.inverse_flattening, edges[:-1], edges[1:])
        return (band * span)[:, None], f"geodesic, per row on the {ellipsoid.name} ellipsoid"
    if not crs.is_projected or ellipsoid is None:
        raise ValueError(f"the map's CRS ({crs.name}) is neither projected nor geographic")
    cols, rows = np.meshgrid(np.arange(width + 1.0), np.arange(height + 1.0))
    xs, ys = transform * (cols, rows)  # every cell's corners, shared with its neighbours
    try:
        to_lonlat = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
        lon, lat = (np.radians(v) for v in to_lonlat.transform(xs, ys, errcheck=True))
    except Exception as err:  # pyproj raises several kinds, and any of them means no longitude and latitude
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"pyproj cannot take the map's cell corners ({crs.name}) to lon/lat ({why})") from None
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise ValueError(f"pyproj cannot take some of the map's cell corners ({crs.name}) to lon/lat")
    q = authalic_q(ellipsoid.inverse_flattening, lat)
    # each cell's corners clockwise from its top left, longitudes taken from the top left's (across 180 too)
    corners = [(slice(None, -1), slice(None, -1)), (slice(None, -1), slice(1, None))]
    corners += [(slice(1, None), slice(1, None)), (slice(1, None), slice(None, -1))]
    origin = lon[corners[0]]
    xs = [np.remainder(lon[at] - origin + math.pi, 2 * math.pi) - math.pi for at in corners]
    ys = [q[at] for at in corners]
    twice = sum(xs[i] * ys[(i + 1) % 4] - xs[(i + 1) % 4] * ys[i] for i in range(4))  # the shoelace
    area = ellipsoid.semi_major_metre**2 / 4 * np.abs(twice)  # x = a lon, y = a q / 2
    return area, f"projected: each cell's corners on the {ellipsoid.name} ellipsoid, from {crs.name}"


@dataclass(frozen=True)
class ClassAreas:
    """Each class's cells and hectares on a map (``hectares`` None where its cells cannot be measured, and
    ``how`` says why), and its no-data cells."""

    class_names: list[str]
    cells: list[int]
    hectares: list[float] | None
    no_data_cells: int
    how: str

    @property
    def mapped_cells(self) -> int:
        return sum(self.cells)

    @property
    def mapped_hectares(self) -> float | None:
        return sum(self.hectares) if self.hectares is not None else None

    @property
    def shares(self) -> list[float]:
        """Each class's share of the mapped area (of its cells where they cannot be measured)."""
        amounts = self.hectares if self.hectares is not None else self.cells
        total = sum(amounts)
        return [amount / total if total else math.nan for amount in amounts]

    def as_dict(self) -> dict[str, Any]:
        return {
            "how": self.how,
            "mapped_cells": self.mapped_cells,
            "no_data_cells": self.no_data_cells,
            "mapped_hectares": self.mapped_hectares,
            "classes": {
                name: {"cells": cells, "hectares": hectares, "share": share}
                for name, cells, hectares, share in zip(
                    self.class_names,
                    self.cells,
                    self.hectares or [None] * len(self.cells),
                    self.shares,
                    strict=True,
                )
            },
        }


def class_areas(classes: np.ndarray, class_names: list[str], nodata: int, crs: Any, transform: Affine) -> ClassAreas:
    """The areas of a ``(rows, cols)`` map of class indices (``nodata`` where none): one ``bincount`` over
    its cells, each weighted by its area."""
    classes = np.asarray(classes)
    counts = np.bincount(classes.ravel(), minlength=max(len(class_names), nodata + 1))
    try:
        areas, how = cell_areas(crs, transform, classes.shape)
    except ValueError as err:
        hectares, how = None, f"cells only: {err}"
    else:
        weights = np.broadcast_to(areas, classes.shape).ravel()
        measured = np.bincount(classes.ravel(), weights=weights, minlength=len(counts))
        hectares = (measured[: len(class_names)] / SQUARE_METRES_PER_HECTARE).tolist()
    return ClassAreas(list(class_names), counts[: len(class_names)].tolist(), hectares, int(counts[nodata]), how)
