"""A map's class areas and its accuracy at reference points: the estimators against Olofsson et al. (2014)'s
worked example, areas on projected and geographic grids against independent derivations, the points' file
checks, and a real `eurosat predict` with stratified points whose figures the test works out itself."""

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import FAST, cli_error
from pyproj import CRS, Geod, Transformer
from rasterio.transform import from_origin
from test_maps import checkpoint, predict, write_raster  # noqa: F401 (checkpoint: the module's tiny ViT fixture)

from eurosat_finetune.errors import ReferencePointsError
from eurosat_finetune.outputs.class_areas import cell_areas, class_areas
from eurosat_finetune.outputs.map_assessment import assess_written_map
from eurosat_finetune.outputs.reference_points import read_reference_points
from eurosat_finetune.statistics.stratified_estimates import stratified_estimates

Z = 1.959963984540054  # the normal distribution's 97.5% quantile


def by_hand(counts: list[list[int]], map_areas: list[float]) -> dict[str, list[float] | float]:
    """Olofsson et al. (2014)'s estimators written out term by term, in plain Python, from the paper's
    formulas (not the module's arrays): strata weights, cell proportions, accuracies, areas and their
    standard errors, eq. 7's producer's variance with N_i. the map's areas."""
    k, total = len(counts), sum(map_areas)
    w = [a / total for a in map_areas]
    n_row = [sum(row) for row in counts]
    strata = [i for i in range(k) if n_row[i]]  # a class neither mapped nor sampled is no stratum
    p = [[w[i] * counts[i][j] / n_row[i] if n_row[i] else 0.0 for j in range(k)] for i in range(k)]
    p_col = [sum(p[i][j] for i in range(k)) for j in range(k)]
    users = [p[i][i] / sum(p[i]) if n_row[i] else math.nan for i in range(k)]
    producers = [p[j][j] / p_col[j] for j in range(k)]
    overall = sum(p[i][i] for i in range(k))
    se_overall = math.sqrt(sum(w[i] ** 2 * users[i] * (1 - users[i]) / (n_row[i] - 1) for i in strata))
    se_users = [math.sqrt(users[i] * (1 - users[i]) / (n_row[i] - 1)) if n_row[i] else math.nan for i in range(k)]
    se_col = []
    se_producers = []
    for j in range(k):
        terms = [w[i] ** 2 * (counts[i][j] / n_row[i]) * (1 - counts[i][j] / n_row[i]) / (n_row[i] - 1) for i in strata]
        se_col.append(math.sqrt(sum(terms)))
        n_hat = sum(map_areas[i] / n_row[i] * counts[i][j] for i in strata)  # N^_.j, the reference class's total
        own = (
            map_areas[j] ** 2 * (1 - producers[j]) ** 2 * users[j] * (1 - users[j]) / (n_row[j] - 1) if n_row[j] else 0
        )
        others = sum(
            map_areas[i] ** 2 * (counts[i][j] / n_row[i]) * (1 - counts[i][j] / n_row[i]) / (n_row[i] - 1)
            for i in strata
            if i != j
        )
        se_producers.append(math.sqrt((own + producers[j] ** 2 * others) / n_hat**2))
    return {
        "overall": overall,
        "se_overall": se_overall,
        "users": users,
        "se_users": se_users,
        "producers": producers,
        "se_producers": se_producers,
        "areas": [c * total for c in p_col],
        "se_areas": [s * total for s in se_col],
    }


OLOFSSON_AREAS = [200_000, 150_000, 3_200_000, 6_450_000]  # ha: deforestation, forest gain, stable forest, other
OLOFSSON_COUNTS = [[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]]  # rows: map class


def test_olofssons_worked_example() -> None:
    """Section 5 of the paper: the figures it publishes (deforestation 235,086 ha +- 68,418; user's 0.88 +-
    0.07, producer's 0.75 +- 0.21, overall 0.95 +- 0.02) from the hand computation, and the module's the same
    to the last digit."""
    hand = by_hand(OLOFSSON_COUNTS, OLOFSSON_AREAS)
    # the paper's half-widths are 1.96 standard errors: 68,418 ha (1.96 x 34,907.2); with the exact quantile
    # (1.95996, as the module and scipy give it) the half-width is 68,416.9 ha
    assert round(hand["areas"][0]) == 235_086 and round(1.96 * hand["se_areas"][0]) == 68_418
    assert round(Z * hand["se_areas"][0], 1) == 68_416.9
    assert (round(hand["users"][0], 2), round(1.96 * hand["se_users"][0], 2)) == (0.88, 0.07)
    assert (round(hand["producers"][0], 2), round(1.96 * hand["se_producers"][0], 2)) == (0.75, 0.21)
    assert (round(hand["overall"], 2), round(1.96 * hand["se_overall"], 2)) == (0.95, 0.02)

    got = stratified_estimates(np.array(OLOFSSON_COUNTS), np.array(OLOFSSON_AREAS, float))
    assert got.overall.estimate == pytest.approx(hand["overall"], rel=1e-12)
    assert got.overall.standard_error == pytest.approx(hand["se_overall"], rel=1e-12)
    assert got.overall.high - got.overall.estimate == pytest.approx(Z * hand["se_overall"], rel=1e-12)
    for name in ("users", "producers", "areas"):
        assert [e.estimate for e in getattr(got, name)] == pytest.approx(hand[name], rel=1e-12), name
        assert [e.standard_error for e in getattr(got, name)] == pytest.approx(hand[f"se_{name}"], rel=1e-12), name
    assert [e.estimate for e in got.proportions] == pytest.approx([a / 10_000_000 for a in hand["areas"]], rel=1e-12)
    assert sum(e.estimate for e in got.areas) == pytest.approx(sum(OLOFSSON_AREAS))


def test_estimates_need_points_in_every_mapped_class_and_say_what_one_point_cannot() -> None:
    with pytest.raises(ValueError, match=r"map classes \[1\] have area but no sample points"):
        stratified_estimates(np.array([[3, 1], [0, 0]]), np.array([10.0, 5.0]))
    one = stratified_estimates(np.array([[3, 1], [0, 1]]), np.array([10.0, 5.0]))  # a stratum of one point
    assert one.users[1].estimate == 1 and math.isnan(one.users[1].standard_error)
    assert math.isnan(one.overall.standard_error)
    absent = stratified_estimates(np.array([[3, 1], [0, 0]]), np.array([10.0, 0.0]))  # a class not on the map
    assert absent.proportions[1].estimate == pytest.approx(10 / 10 * 1 / 4)


def geod_cell_area(crs: str, transform: rasterio.Affine, row: int, col: int) -> float:
    """A projected cell's area on WGS84 from pyproj's Geod: its corners in lon/lat, joined by geodesics (a
    cell's edges are straight on the plane, not geodesics: a sliver apart, well under 0.1% at these sizes)."""
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    corners = [transform * (col + dc, row + dr) for dc, dr in ((0, 0), (1, 0), (1, 1), (0, 1))]
    lons, lats = to_lonlat.transform(*zip(*corners, strict=True))
    return abs(Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)[0])


def test_web_mercator_cells_at_60_n_have_their_area_on_the_ellipsoid() -> None:
    """10 x 10 cells of 100 m in EPSG:3857 at 60 N: 100 ha on the plane, about 25 ha on the ground (the
    projection's areal scale there is about 1 / cos^2(60) = 4); each cell against Geod on its corners."""
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(10.0, 60.0)
    transform = from_origin(x, y, 100, 100)
    classes = np.zeros((10, 10), np.uint8)
    classes[5:] = 1
    areas = class_areas(classes, ["a", "b"], 255, rasterio.CRS.from_epsg(3857), transform)
    expected = [
        sum(geod_cell_area("EPSG:3857", transform, r, c) for r in rows for c in range(10)) / 1e4
        for rows in (range(5), range(5, 10))
    ]
    assert sum(expected) == pytest.approx(25, rel=0.01)
    assert areas.hectares == pytest.approx(expected, rel=1e-3)
    assert areas.how == "projected: each cell's corners on the WGS 84 ellipsoid, from WGS 84 / Pseudo-Mercator"


def test_a_utm_map_of_640_m_cells_has_each_cells_area_on_the_ellipsoid() -> None:
    """640 m cells (40.96 ha on the plane) near the edge of UTM zone 32 and on its central meridian: the
    plane's area is off by up to ~0.1% (scale 0.9996 to ~1.0005), each cell's ellipsoidal area is not."""
    classes = np.array([[0, 0, 1, 255], [2, 2, 2, 1]], np.uint8)
    for easting in (5e5, 7.5e5):  # on the central meridian, and 250 km east of it
        transform = from_origin(easting, 5e6, 640, 640)
        areas = class_areas(classes, ["a", "b", "c"], 255, rasterio.CRS.from_epsg(32632), transform)
        assert areas.cells == [2, 2, 3] and areas.no_data_cells == 1
        expected = [
            sum(geod_cell_area("EPSG:32632", transform, r, c) for r, c in zip(*np.nonzero(classes == k), strict=True))
            for k in range(3)
        ]
        assert areas.hectares == pytest.approx([e / 1e4 for e in expected], rel=1e-5)
        assert areas.shares == pytest.approx(np.array(expected) / sum(expected))
        record = areas.as_dict()
        assert record["mapped_hectares"] == pytest.approx(sum(expected) / 1e4, rel=1e-5)
    assert areas.hectares[2] == pytest.approx(3 * 40.96 / 1.00077, rel=1e-4)  # 250 km east: the plane 0.08% larger
    plain = class_areas(classes, ["a", "b", "c"], 255, None, rasterio.Affine.identity())  # a photo mapped: no CRS
    assert plain.hectares is None and plain.how == "cells only: the map has no CRS" and plain.shares[2] == 3 / 7
    feet = from_origin(1e6, 2e5, 100, 100)  # US survey feet: the cell in metres over the scale
    assert cell_areas(rasterio.CRS.from_epsg(2263), feet, (1, 1))[0][0, 0] == pytest.approx(
        geod_cell_area("EPSG:2263", feet, 0, 0), rel=1e-5
    )


def test_cells_pyproj_cannot_put_on_the_ellipsoid_leave_the_map_cells_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where pyproj cannot take a cell's corners to lon/lat (off an orthographic projection's disc: an error;
    NaN from some transformation), the map gets its cells only and ``how`` says why, not the plane's area."""
    import eurosat_finetune.outputs.class_areas as module

    classes = np.zeros((2, 2), np.uint8)
    ortho = CRS.from_proj4("+proj=ortho +lat_0=0 +lon_0=0 +ellps=WGS84")
    assert class_areas(classes, ["a"], 255, ortho, from_origin(6e6, 0, 1000, 1000)).hectares is not None
    off = class_areas(classes, ["a"], 255, ortho, from_origin(7e6, 0, 1000, 1000))  # past the disc's 6,378 km
    assert off.hectares is None and off.cells == [4]
    assert off.how.startswith("cells only: pyproj cannot take the map's cell corners (unknown) to lon/lat (")

    class NaNs:
        def transform(self, xs: np.ndarray, ys: np.ndarray, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
            return np.full(np.shape(xs), np.nan), np.asarray(ys, float)

    monkeypatch.setattr(module.Transformer, "from_crs", lambda *args, **kwargs: NaNs())
    utm = class_areas(classes, ["a"], 255, rasterio.CRS.from_epsg(32632), from_origin(5e5, 5e6, 640, 640))
    assert utm.hectares is None
    assert utm.how == "cells only: pyproj cannot take some of the map's cell corners (WGS 84 / UTM zone 32N) to lon/lat"


def test_a_geographic_map_has_each_rows_cells_on_the_ellipsoid() -> None:
    """Each cell's area from pyproj's Geod on the cell's polygon (geodesic edges: within a millionth of a cell
    bounded by parallels, at this size), and on a sphere the band formula R^2 dlon (sin lat2 - sin lat1)."""
    transform = from_origin(8.0, 60.0, 0.01, 0.005)  # lon/lat, 20 rows from 60 N down
    classes = np.zeros((20, 3), np.uint8)
    classes[:, 1] = 1
    classes[0, 2] = 255
    areas = class_areas(classes, ["a", "b"], 255, rasterio.CRS.from_epsg(4326), transform)
    geod = Geod(ellps="WGS84")

    def cell(row: int, col: int) -> float:
        west, north = transform * (col, row)
        east, south = transform * (col + 1, row + 1)
        return abs(geod.polygon_area_perimeter([west, east, east, west], [north, north, south, south])[0])

    expected_a = sum(cell(r, 0) for r in range(20)) + sum(cell(r, 2) for r in range(1, 20))
    expected_b = sum(cell(r, 1) for r in range(20))
    assert areas.hectares == pytest.approx([expected_a / 1e4, expected_b / 1e4], rel=1e-7)
    assert areas.no_data_cells == 1 and "WGS 84" in areas.how

    sphere = CRS.from_proj4("+proj=longlat +R=6371000 +no_defs")
    rows, _ = cell_areas(sphere, transform, (20, 3))
    lats = np.radians(60.0 - 0.005 * np.arange(21))
    band = 6371000.0**2 * np.radians(0.01) * (np.sin(lats[:-1]) - np.sin(lats[1:]))
    assert rows[:, 0] == pytest.approx(band, rel=1e-9)


def test_reference_points_are_refused_in_one_line(tmp_path: Path) -> None:
    names = ["Forest", "River"]

    def refused(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ReferencePointsError) as caught:
            read_reference_points(path, names)
        message = str(caught.value)
        assert "\n" not in message and message.startswith(f"maps.reference_points={path}")
        return message.removeprefix(f"maps.reference_points={path}")

    assert refused("a.csv", "x,y,class\n8,48,Forest\n8,48,Forrest\n") == (
        ", line 3: class 'Forrest' is not one of the map's classes (Forest, River); give a class name or its "
        "index, 0 to 1"
    )
    assert refused("b.csv", "x,y,label\n8,48,Forest\n").startswith(" has no column class (its columns: x, y, label)")
    assert refused("c.csv", "x,y,class\n8,north,1\n") == ", line 2: y 'north' is not a number"
    assert refused("d.csv", "x,y,class,crs\n8,48,1,EPSG:99999\n").startswith(
        ", line 2: crs 'EPSG:99999' is not a CRS pyproj knows"
    )
    assert refused("e.csv", "x,y,class\n") == " holds no points"
    line = {"type": "LineString", "coordinates": [[8, 48], [9, 48]]}
    assert refused(
        "f.geojson",
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "id": "p0", "geometry": line, "properties": {"class": "River"}}],
            }
        ),
    ) == (", feature 0 (id p0) is LineString, not a Point; give points only")
    assert refused("g.geojson", "{not json").startswith(" is not JSON")
    with pytest.raises(ReferencePointsError, match="no such file"):
        read_reference_points(tmp_path / "none.csv", names)
    points = read_reference_points(tmp_path / "a.csv", ["Forest", "Forrest"])  # a name, and an index below
    assert points.classes.tolist() == [0, 1] and points.names == ["line 2", "line 3"]


def write_geographic_map(tmp_path: Path) -> tuple[Path, Path]:
    """A 2 x 2 map in lon/lat (Forest, River, River, no data) and 5 GeoJSON points: Forest's stratum 1 point,
    River's 2, one point on the no-data cell and one off the map."""
    transform = from_origin(8.0, 48.0, 0.01, 0.01)
    classes = np.array([[0, 1], [1, 255]], np.uint8)
    path = tmp_path / "m.classes.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=2,
        height=2,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=transform,
        nodata=255,
    ) as dst:
        dst.write(classes[None])
        dst.update_tags(class_names=json.dumps(["Forest", "River"]))
    points = [
        (8.005, 47.995, "Forest"),
        (8.015, 47.995, "Forest"),
        (8.005, 47.985, "River"),
        (8.015, 47.985, 1),
        (9.5, 47.99, "River"),
    ]
    features = [
        {
            "type": "Feature",
            "id": f"p{i}",
            "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": {"class": c},
        }
        for i, (x, y, c) in enumerate(points)
    ]
    (tmp_path / "p.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path, tmp_path / "p.geojson"


def test_a_written_geographic_map_is_assessed_at_geojson_points(tmp_path: Path) -> None:
    """``assess_written_map``: a map in lon/lat, points as GeoJSON; one off the map and one on no data named."""
    path, _ = write_geographic_map(tmp_path)
    accuracy = assess_written_map(path, tmp_path / "p.geojson")
    record = accuracy.as_dict()
    assert record["error_matrix"]["counts"] == [[1, 0], [1, 1]]
    assert record["points"] == {
        "given": 5,
        "used": 3,
        "outside_map": ["feature 4 (id p4)"],
        "on_no_data": ["feature 3 (id p3)"],
    }
    assert record["at_points"]["overall"] == pytest.approx(2 / 3) and record["area_adjusted"] is None
    stratified = assess_written_map(path, tmp_path / "p.geojson", "stratified").as_dict()["area_adjusted"]
    hectares = [stratified["hectares"][name]["estimate"] for name in ("Forest", "River")]
    assert sum(hectares) == pytest.approx(accuracy.areas.mapped_hectares)  # the map's area, shared out again
    one_cell = accuracy.areas.hectares[0]  # Forest's stratum: 1 point, mapped Forest; River's: 2, one of them Forest
    assert hectares[0] == pytest.approx(one_cell + accuracy.areas.hectares[1] / 2)
    (tmp_path / "q.csv").write_text("x,y,class\n8.015,47.995,River\n8.005,47.985,River\n")  # none on Forest
    unsampled = assess_written_map(path, tmp_path / "q.csv", "stratified").as_dict()
    assert unsampled["area_adjusted"] is None
    assert unsampled["area_adjusted_note"].startswith("not estimated: mapped class Forest holds no reference points")


def test_strata_of_few_points_are_flagged_and_one_point_said_once(tmp_path: Path) -> None:
    """Forest's stratum holds 1 point, River's 2: every area's standard error is undefined, said once naming
    Forest (not against every class), and both strata are flagged as too small for the normal intervals."""
    path, points = write_geographic_map(tmp_path)
    accuracy = assess_written_map(path, points, "stratified")
    adjusted = accuracy.as_dict()["area_adjusted"]
    assert adjusted["small_strata"] == {"Forest": 1, "River": 2}
    note = (
        "a stratum of one point (Forest) leaves the standard errors undefined; strata of fewer than 5 points, too "
        "few for the normal approximation's intervals: Forest (1 point), River (2 points)"
    )
    assert adjusted["small_strata_note"] == note
    assert adjusted["hectares"]["River"]["standard_error"] is None
    summary = accuracy.summary("m")
    assert summary.count("one point") == 1 and summary.endswith(f"\n  {note}")
    assert "(no interval)" in summary and "a class of one point" not in summary
    from eurosat_finetune.outputs.map_assessment import small_strata_note

    assert small_strata_note({}) is None
    assert small_strata_note({"A": 4}) == (
        "strata of fewer than 5 points, too few for the normal approximation's intervals: A (4 points)"
    )
    assert small_strata_note({"A": 1, "B": 1}).startswith("strata of one point (A, B) leave the standard errors")


def test_the_command_never_writes_over_a_file_and_refuses_before_assessing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``--json`` onto an existing file (the map's own sidecar too) or into a missing folder: one line, before
    any assessing (nothing printed), the file as it was; a new file is made, once."""
    from eurosat_finetune.map_accuracy import main

    path, points = write_geographic_map(tmp_path)
    sidecar = tmp_path / "m.json"
    sidecar.write_text('{"areas": "as predict wrote them"}\n')
    prog = "python -m eurosat_finetune.map_accuracy"
    for target, said in (
        (sidecar, f"--json {sidecar} already exists; give a new file name (it is never replaced)"),
        (
            tmp_path / "no" / "a.json",
            f"--json {tmp_path / 'no' / 'a.json'}: no folder {tmp_path / 'no'}; create it or give another path",
        ),
    ):
        with pytest.raises(SystemExit) as exit:
            main([str(path), str(points), "--json", str(target)])
        assert exit.value.code == 2
        out, err = capsys.readouterr()
        assert out == "" and err.splitlines()[-1] == f"{prog}: error: {said}" and "Traceback" not in err
    assert sidecar.read_text() == '{"areas": "as predict wrote them"}\n'
    new = tmp_path / "new.json"
    assert main([str(path), str(points), "--sampling", "stratified", "--json", str(new)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(new.read_text())["accuracy"]["area_adjusted"]["small_strata"] == {"Forest": 1, "River": 2}
    assert err.splitlines() == [  # map_assessment's own wording, as predict's warning
        f"{points}: 1 point on no-data cells, not used: feature 3 (id p3)",
        f"{points}: 1 point outside the map, not used: feature 4 (id p4)",
    ]
    with pytest.raises(SystemExit):
        main([str(path), str(points), "--json", str(new)])
    assert "already exists" in capsys.readouterr().err


def cell_centre(row: int, col: int, cell: float = 320.0) -> tuple[float, float]:
    return 500_000 + cell * (col + 0.5), 5_000_000 - cell * (row + 0.5)


@pytest.mark.slow  # an end-to-end predict: the full suite; the assessment's figures stay quick
def test_predict_reports_each_maps_areas_and_its_accuracy_at_stratified_points(
    checkpoint: Path,  # noqa: F811 (the fixture of test_maps)
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 128 x 160 px UTM scene in 32 px windows (4 x 5 cells of 320 m, 10.24 ha), its top-left window no data.
    The test classifies the windows itself, draws 3 points in each mapped class (two labelled as mapped, one
    as the next class), half given in UTM and half in lon/lat, one point off the map and one on the no-data
    cell; the sidecar's areas and area-adjusted estimates are the test's own, worked out by hand."""
    from eurosat_finetune.model import ImageClassifier

    model = ImageClassifier.load_from_checkpoint(checkpoint).eval()
    # windows of one colour each: the tiny model, trained one epoch, gives a few classes over a range of colours
    colours = [(v, g, 255 - v) for v in range(8, 256, 16) for g in range(16, 256, 32)]
    with torch.no_grad():
        chosen = model(torch.tensor(colours, dtype=torch.uint8)[:, :, None, None].expand(-1, 3, 32, 32)).argmax(-1)
    firsts = {int(k): colours[i] for i, k in reversed(list(enumerate(chosen)))}  # a colour of each class given
    palette = [firsts[k] for k in sorted(firsts)][:3]
    assert len(palette) >= 2, "the tiny model gives one class whatever the colour"
    layout = [[0, 0, 0, 1, 1], [0, 0, 1, 1, 1], [2, 2, 2, 2, 0], [1, 1, 2, 2, 0]]  # which colour in each cell
    pixels = np.zeros((3, 128, 160), np.uint8)
    for r, row in enumerate(layout):
        for c, colour in enumerate(row):
            pixels[:, 32 * r : 32 * r + 32, 32 * c : 32 * c + 32] = np.array(palette[colour % len(palette)])[
                :, None, None
            ]
    pixels[:, :32, :32] = 0  # no data
    (tmp_path / "s").mkdir()
    write_raster(tmp_path / "s" / "s.tif", pixels, nodata=0)
    windows = torch.from_numpy(pixels).unfold(1, 32, 32).unfold(2, 32, 32).permute(1, 2, 0, 3, 4)
    with torch.no_grad():
        expected = model(windows.reshape(-1, 3, 32, 32)).argmax(-1).reshape(4, 5).numpy()
    expected[0, 0] = 255
    names = model.class_names
    mapped = sorted(set(expected.ravel().tolist()) - {255})
    assert len(mapped) >= 2

    to_lonlat = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True)
    rows, counts = [], np.zeros((len(names), len(names)), int)
    for klass in mapped:
        cells = list(zip(*np.nonzero(expected == klass), strict=True))
        for k in range(3):
            r, c = cells[k % len(cells)]
            x, y = cell_centre(int(r), int(c))
            x, y = x + 40 * k - 40, y + 30 * k - 30  # a few points in one cell are not at one spot
            reference = klass if k < 2 else (klass + 1) % len(names)
            counts[klass, reference] += 1
            label = names[reference] if k != 1 else str(reference)  # a name or an index
            if len(rows) % 2:
                rows.append([*to_lonlat.transform(x, y), label, ""])  # lon/lat: the default CRS
            else:
                rows.append([x, y, label, "EPSG:32632"])
    rows.append([*cell_centre(0, 0), names[0], "EPSG:32632"])  # the no-data cell
    rows.append([9.0, 10.0, names[0], ""])  # far from the scene
    points = tmp_path / "points.csv"
    with points.open("w", newline="") as file:
        csv.writer(file).writerows([["x", "y", "class", "crs"], *rows])

    with caplog.at_level(logging.WARNING, logger="eurosat_finetune"):
        run = predict(
            checkpoint,
            tmp_path / "s",
            tmp_path / "logs",
            f"--maps.reference_points={points}",
            "--maps.reference_sampling=stratified",
        )
    with rasterio.open(run / "maps" / "s.classes.tif") as source:
        assert (source.read(1) == expected).all()
        grid = source.transform
    sidecar = json.loads((run / "maps" / "s.json").read_text())

    cells_of = [int((expected == k).sum()) for k in range(len(names))]
    cell_ha = np.array([[geod_cell_area("EPSG:32632", grid, r, c) / 1e4 for c in range(5)] for r in range(4)])
    assert cell_ha == pytest.approx(10.24, rel=2e-3)  # the plane's 10.24 ha, scaled by UTM's factor there
    ha_of = [float(cell_ha[expected == k].sum()) for k in range(len(names))]
    areas = sidecar["areas"]
    assert areas["no_data_cells"] == 1 and areas["mapped_cells"] == 19
    assert areas["mapped_hectares"] == pytest.approx(sum(ha_of), rel=1e-5)
    for k, name in enumerate(names):
        assert areas["classes"][name] == pytest.approx(
            {"cells": cells_of[k], "hectares": ha_of[k], "share": ha_of[k] / sum(ha_of)}, rel=1e-5
        )

    accuracy = sidecar["accuracy"]
    no_data_line, far_line = f"line {len(rows)}", f"line {len(rows) + 1}"
    assert accuracy["points"] == {
        "given": len(rows),
        "used": len(rows) - 2,
        "outside_map": [far_line],
        "on_no_data": [no_data_line],
    }
    assert accuracy["error_matrix"]["counts"] == counts.tolist()
    assert accuracy["at_points"]["overall"] == pytest.approx(2 / 3)
    present = [k for k in range(len(names)) if cells_of[k] or counts[:, k].sum()]
    hand = by_hand(
        [[int(counts[i, j]) for j in present] for i in present], [ha_of[i] for i in present]
    )  # classes neither mapped nor referenced add nothing
    adjusted = accuracy["area_adjusted"]
    assert adjusted["overall"]["estimate"] == pytest.approx(hand["overall"])
    assert adjusted["overall"]["standard_error"] == pytest.approx(hand["se_overall"])
    assert adjusted["overall"]["high"] == pytest.approx(hand["overall"] + Z * hand["se_overall"])
    for n, k in enumerate(present):
        name = names[k]
        assert adjusted["hectares"][name]["estimate"] == pytest.approx(hand["areas"][n]), name
        assert adjusted["hectares"][name]["standard_error"] == pytest.approx(hand["se_areas"][n]), name
        if cells_of[k]:
            assert adjusted["users"][name]["estimate"] == pytest.approx(hand["users"][n]), name
            assert adjusted["users"][name]["standard_error"] == pytest.approx(hand["se_users"][n]), name
        assert adjusted["producers"][name]["estimate"] == pytest.approx(hand["producers"][n]), name
        assert adjusted["producers"][name]["standard_error"] == pytest.approx(hand["se_producers"][n]), name

    printed = capsys.readouterr().out
    assert f"Accuracy of s at {len(rows) - 2} of {len(rows)} reference points (sampling: stratified)" in printed
    said = [r.getMessage() for r in caplog.records if str(points) in r.getMessage()]
    assert said == [
        f"{points}: 1 point on no-data cells, not used: {no_data_line}",
        f"{points}: 1 point outside the map, not used: {far_line}",
    ]

    # the written map assessed again, without mapping: the same figures, as the command prints and writes them
    again = assess_written_map(run / "maps" / "s.classes.tif", points, "stratified")
    assert again.as_dict() == accuracy
    from eurosat_finetune.map_accuracy import main

    out = tmp_path / "assessment.json"
    main([str(run / "maps" / "s.classes.tif"), str(points), "--sampling", "stratified", "--json", str(out)])
    assert json.loads(out.read_text())["accuracy"] == accuracy
    assert "Accuracy of s.classes.tif at" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y,class\n8.9,45.1,Forrest\n")
    with pytest.raises(SystemExit) as exit:
        main([str(run / "maps" / "s.classes.tif"), str(bad)])
    assert exit.value.code == 2
    assert capsys.readouterr().err == (
        f"python -m eurosat_finetune.map_accuracy: error: points={bad}, line 2: class 'Forrest' is not one of the "
        f"map's classes ({', '.join(names)}); give a class name or its index, 0 to {len(names) - 1}\n"
    )


def test_bad_reference_points_are_refused_before_any_mapping(
    checkpoint: Path,  # noqa: F811 (the fixture of test_maps)
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    (tmp_path / "s").mkdir()
    write_raster(tmp_path / "s" / "s.tif", np.ones((3, 64, 64), np.uint8))
    points = tmp_path / "points.csv"
    points.write_text("x,y,class\n8.9,45.1,Forest\n8.9,45.1,Forrest\n")
    runs = tmp_path / "runs"

    def refused(*options: str) -> str:
        args = ["predict", *FAST, f"--ckpt_path={checkpoint}", f"--data.predict_root={tmp_path / 's'}"]
        return cli_error([*args, f"--trainer.default_root_dir={runs}", *options], capsys)

    error = refused(f"--maps.reference_points={points}")
    assert error.startswith(f"eurosat: error: maps.reference_points={points}, line 3: class 'Forrest' is not one of")
    assert error.count("\n") == 1 and "Traceback" not in error
    assert not list(runs.rglob("maps"))  # nothing mapped
    assert "maps.reference_points" in refused(f"--maps.reference_points={tmp_path / 'none.csv'}")
    error = refused(f"--maps.reference_points={points}", "--maps.reference_sampling=random")
    assert 'Parser key "maps.reference_sampling"' in error
