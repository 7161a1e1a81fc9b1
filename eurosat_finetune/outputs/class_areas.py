"""How much of a map each class covers, on the map's own grid in its CRS: cells, hectares and share of the
mapped area, no-data cells left out. In a projected CRS every cell has the transform's area (in the CRS's
linear unit, converted to metres: the area on the projection's plane); in a geographic CRS a cell is bounded
by two meridians and two parallels, and its area on the CRS's ellipsoid is the closed form of the band
between two latitudes (authalic latitude), the same for every cell of a row."""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyproj import CRS
from rasterio.transform import Affine

SQUARE_METRES_PER_HECTARE = 10_000.0


def ellipsoid_band_area(a: float, inverse_flattening: float, lat1: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """The area (square units of ``a``) between latitudes ``lat1`` and ``lat2`` (radians) per radian of
    longitude on an ellipsoid of semi-major axis ``a``: ``a^2 / 2 * |q(lat2) - q(lat1)|``, ``q`` Snyder's
    (1987, eq. 3-12) authalic function. Exact for a cell bounded by parallels, which are not geodesics: a
    polygon of geodesic edges (pyproj's ``Geod``) differs from it by a sliver on each parallel edge."""
    e2 = 0.0 if not inverse_flattening else (2 - 1 / inverse_flattening) / inverse_flattening
    e = math.sqrt(e2)

    def q(lat: np.ndarray) -> np.ndarray:
        s = np.sin(lat)
        if e == 0:  # a sphere: the limit of the ellipsoid's formula
            return 2 * s
        return (1 - e2) * (s / (1 - e2 * s**2) + np.arctanh(e * s) / e)

    return a**2 / 2 * np.abs(q(lat2) - q(lat1))


def row_cell_areas(crs: Any, transform: Affine, height: int) -> tuple[np.ndarray, str]:
    """The area in square metres of a cell of each of the grid's ``height`` rows, and how it was worked out.
    Raises ``ValueError`` for a grid whose cells it cannot measure (no CRS; a rotated geographic grid)."""
    if crs is None:
        raise ValueError("the map has no CRS")
    crs = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    if crs.is_geographic:
        if transform.b or transform.d:
            raise ValueError("the map's geographic grid is rotated")
        to_radians = crs.axis_info[0].unit_conversion_factor
        ellipsoid = crs.ellipsoid
        edges = np.clip((transform.f + transform.e * np.arange(height + 1)) * to_radians, -math.pi / 2, math.pi / 2)
        width = abs(transform.a) * to_radians
        band = ellipsoid_band_area(ellipsoid.semi_major_metre, ellipsoid.inverse_flattening, edges[:-1], edges[1:])
        return band * width, f"geodesic, per row on the {ellipsoid.name} ellipsoid"
    if not crs.is_projected:
        raise ValueError(f"the map's CRS ({crs.name}) is neither projected nor geographic")
    metres = crs.axis_info[0].unit_conversion_factor
    cell = abs(transform.a * transform.e - transform.b * transform.d) * metres**2
    unit = crs.axis_info[0].unit_name
    return np.full(height, cell), f"projected: the transform's cell in {crs.name} ({unit})"


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
    its cells, each weighted by its row's cell area."""
    classes = np.asarray(classes)
    counts = np.bincount(classes.ravel(), minlength=max(len(class_names), nodata + 1))
    try:
        row_areas, how = row_cell_areas(crs, transform, classes.shape[0])
    except ValueError as err:
        hectares, how = None, f"cells only: {err}"
    else:
        weights = np.broadcast_to(row_areas[:, None], classes.shape).ravel()
        measured = np.bincount(classes.ravel(), weights=weights, minlength=len(counts))
        hectares = (measured[: len(class_names)] / SQUARE_METRES_PER_HECTARE).tolist()
    return ClassAreas(list(class_names), counts[: len(class_names)].tolist(), hectares, int(counts[nodata]), how)
