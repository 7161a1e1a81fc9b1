"""A class map's legend where GIS tools read it (GDAL's PAM sidecar, a QGIS style), and the preview's whole title."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from helpers.legend_read_back import check_legend, libgdal, read_legend
from matplotlib.backends.backend_agg import FigureCanvasAgg
from rasterio.transform import from_origin

from eurosat_finetune.data.patches.published import EUROSAT_CLASSES
from eurosat_finetune.errors import OutputError
from eurosat_finetune.outputs.land_cover_maps import AtomicRaster
from eurosat_finetune.outputs.map_legend import colour_table, write_legend
from eurosat_finetune.outputs.map_preview import preview_figure

CLASSES = list(EUROSAT_CLASSES)
PRODUCT = "S2A_MSIL1C_20240601T103031_N0510_R108_T32TMT_20240601T123456"


@pytest.fixture(autouse=True)
def sidecars_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """GDAL looks for a file's sidecars (the .aux.xml) unless told not to list folders on open, as reading STAC
    items over HTTP tells it, for its whole process (stac_items.HTTP_DEFAULTS): a STAC test run earlier in this
    process must not hide them here."""
    monkeypatch.delenv("GDAL_DISABLE_READDIR_ON_OPEN", raising=False)


def write_class_map(path: Path, names: list[str]) -> Path:
    """A class map as ``eurosat predict`` writes one: a COG with the colour table, the class names' tags, nodata."""
    with AtomicRaster(
        path,
        "nearest",
        driver="GTiff",
        width=3,
        height=2,
        count=1,
        dtype="uint8",
        nodata=255,
        crs="EPSG:32632",
        transform=from_origin(500_000, 5_000_000, 640, 640),
    ) as dst:
        dst.write_colormap(1, colour_table(names))
        dst.write(np.array([[[0, 1, 2], [len(names) - 1, 255, 0]]], np.uint8))
        dst.update_tags(class_names=json.dumps(names), **{f"class_{i}": n for i, n in enumerate(names)})
    return path


@pytest.mark.parametrize("names", [CLASSES, ["Wald", "Gewässer", "Siedlung & Straße"]])
def test_the_legend_names_each_value_in_the_colour_table_s_colour(names: list[str], tmp_path: Path) -> None:
    """EuroSAT's classes, and names that XML must escape or encode: what GDAL and QGIS read is the map's own."""
    class_map = write_class_map(tmp_path / "scene.classes.tif", list(names))
    written = write_legend(class_map, list(names))
    assert [p.name for p in written] == ["scene.classes.tif.aux.xml", "scene.classes.qml"]
    assert check_legend(class_map) == list(names)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["scene.classes.tif", *(p.name for p in written)])


def test_an_earlier_legend_is_never_replaced(tmp_path: Path) -> None:
    class_map = write_class_map(tmp_path / "m.classes.tif", CLASSES)
    (tmp_path / "m.classes.qml").write_text("a style of one's own")
    with pytest.raises(OutputError, match=r"m\.classes\.qml already exists"):
        write_legend(class_map, CLASSES)
    assert (tmp_path / "m.classes.qml").read_text() == "a style of one's own"


def test_gdal_opens_the_pam_sidecar_beside_the_map(tmp_path: Path) -> None:
    """Without GDAL's C API at hand, rasterio shows that GDAL opens ``<map>.aux.xml``: an item of the band's
    metadata added to the sidecar written is in rasterio's ``tags(1)``, and the categories stay GDAL's."""
    class_map = write_class_map(tmp_path / "m.classes.tif", CLASSES)
    write_legend(class_map, CLASSES)
    sidecar = tmp_path / "m.classes.tif.aux.xml"
    text = sidecar.read_text()
    marked = text.replace(
        "<CategoryNames>", '<Metadata><MDI key="LEGEND_READ">yes</MDI></Metadata>\n    <CategoryNames>'
    )
    sidecar.write_text(marked)
    with rasterio.open(class_map) as source:
        assert source.tags(1)["LEGEND_READ"] == "yes"
    lib = libgdal()
    if lib is not None:
        assert read_legend(lib, class_map)[0] == CLASSES
    shutil.copy(class_map, tmp_path / "alone.classes.tif")  # no sidecar: nothing of it
    with rasterio.open(tmp_path / "alone.classes.tif") as source:
        assert "LEGEND_READ" not in source.tags(1)


@pytest.mark.parametrize("name", [PRODUCT, f"tiles/32TMT/{PRODUCT}.SAFE", "x" * 150, "mosaic"])
def test_the_preview_s_title_is_the_whole_name_within_the_figure(name: str) -> None:
    image = np.zeros((3, 64, 64), np.uint8)
    fig = preview_figure(name, image, np.zeros((2, 2), np.uint8), CLASSES)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)  # the layout as the PNG has it
    left, right = fig.axes
    title = left.title
    assert title.get_text().replace("\n", "") == name  # every character, in order
    box, figure_box = title.get_window_extent(renderer), fig.bbox
    assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1 and box.y1 <= figure_box.y1  # not cut
    assert box.x1 <= right.get_window_extent(renderer).x0  # nor over the map's panel
    assert (name == "mosaic") == ("\n" not in title.get_text())
