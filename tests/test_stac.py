"""STAC items as ``data.predict_root``: Earth Search and Planetary Computer items (as each publishes them)
served by a STAC API on 127.0.0.1, mapped as their pixels stacked on the 10 m grid without offset are."""

import json
import logging
import os
import re
import socket
import sys
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pystac
import pytest
import rasterio
from conftest import FAST, cli_error
from fakes.stac import (
    ORIGIN,
    SIZE,
    StacServer,
    earth_search_item,
    lon_lat_bbox,
    planetary_computer_item,
    scene_pixels,
    tile_bytes,
)
from rasterio.warp import transform_bounds
from test_products import NO_B10, classes_and_tags, fit, predict, stacked_reference

from eurosat_finetune.data.bands import RGB_BANDS
from eurosat_finetune.data.scenes.catalog import SceneOptions, TrainedOn
from eurosat_finetune.data.scenes.predict_inputs import PredictInputs
from eurosat_finetune.data.scenes.stac_assets import band_assets
from eurosat_finetune.data.scenes.stac_composites import composite_scene
from eurosat_finetune.data.scenes.stac_items import (
    HTTP_DEFAULTS,
    PLANETARY_COMPUTER,
    is_planetary_computer,
    load_items,
    search_parameters,
)
from eurosat_finetune.data.scenes.stac_radiometry import decide, pixels_offset
from eurosat_finetune.data.scenes.stac_scenes import item_product, item_scenes
from eurosat_finetune.errors import (
    BandError,
    CatalogueError,
    ConfigError,
    DataNotFoundError,
    OutsideAreaError,
    UnreadableImageError,
)

TRAINED = TrainedOn(image_size=16, bands=NO_B10, resolution=10.0)


@pytest.fixture(scope="module")
def ms12(ms_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ViT trained on 12 bands of the multispectral sample (no B10, as L2A items have)."""
    return fit(ms_root, tmp_path_factory.mktemp("ms12"), f"--data.bands=[{','.join(NO_B10)}]")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StacServer]:
    stac = StacServer(tmp_path / "files")
    yield stac
    stac.close()


def publish(server: StacServer, catalogue: str, seed: int, in_pixels: int, **options: object) -> tuple[str, dict]:
    """An item of ``catalogue`` whose files hold the offset ``in_pixels`` (0 or 1000), on ``server``: its
    URL and the DN its files hold."""
    _, stored = scene_pixels(seed, in_pixels)
    make = earth_search_item if catalogue == "earth-search" else planetary_computer_item
    return server.add_item(make(server.files, server.file_url("").rstrip("/"), stored, **options)), stored


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_bands_are_found_by_name_in_each_catalogues_layout(tmp_path: Path) -> None:
    """Earth Search's common-name keys (never its -jp2 copies or visual), the Planetary Computer's band keys,
    another catalogue's eo:bands names; a band the item lacks named in one line before any pixel is read."""
    _, stored = scene_pixels(1, 0)
    earth = pystac.Item.from_dict(earth_search_item(tmp_path / "es", "https://cogs.example", stored, True))
    found = band_assets(earth, [*NO_B10, "SCL"])
    assert {band: asset.key for band, asset in found.items()} == {
        "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
        "B07": "rededge3", "B08": "nir", "B09": "nir09", "B11": "swir16", "B12": "swir22", "B8A": "nir08", "SCL": "scl",
    }  # fmt: skip
    assert found["B8A"].gdal_path.startswith("/vsicurl/https://cogs.example/") and found["B8A"].resolution == 20
    assert found["B01"].resolution == 60 and found["B02"].resolution == 10
    computer = pystac.Item.from_dict(planetary_computer_item(tmp_path / "pc", "https://blob.example", stored))
    assert {band: asset.key for band, asset in band_assets(computer, NO_B10).items()} == {b: b for b in NO_B10}
    # a third catalogue: its own keys, bands named in eo:bands; a lone common name ("rededge") finds nothing
    other = earth.clone()
    for key in list(other.assets):
        other.assets[key.upper() + "_COG" if not key.endswith("-jp2") else key] = other.assets.pop(key)
    assert band_assets(other, ["B8A"])["B8A"].key == "NIR08_COG"
    other.assets["REDEDGE1_COG"].extra_fields["eo:bands"] = [{"common_name": "rededge", "name": "rededge"}]
    with pytest.raises(BandError) as refused:
        band_assets(other, ["B04", "B05"])
    assert str(refused.value).startswith(
        f"STAC item {earth.id} has no cloud-optimised GeoTIFF asset of band B05, which the model reads (assets: "
    )
    only_copies = earth.clone()
    del only_copies.assets["red"]  # left: red-jp2 (S3, JPEG 2000) and visual (eo:bands red, green, blue)
    with pytest.raises(BandError, match="of band B04,"):
        band_assets(only_copies, ["B04"])


def test_the_offset_is_decided_by_the_metadata_and_checked_against_the_pixels(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Earth Search's flag, the Planetary Computer's baseline and product-metadata; the pixels win where they
    disagree, in one warning; raster:bands' -0.1 is never used."""
    cases = {
        "earth-true": (earth_search_item, 0, {"boa_offset_applied": True}),  # raster:bands still say -0.1
        "computer": (planetary_computer_item, 1000, {"baseline": "05.10"}),
        "earth-wrong": (earth_search_item, 0, {"boa_offset_applied": False}),  # flag false, no offset in pixels
        "earth-old": (earth_search_item, 0, {"boa_offset_applied": False, "baseline": "03.01"}),
    }
    decided = {}
    for name, (make, in_pixels, options) in cases.items():
        _, stored = scene_pixels(1, in_pixels)
        item = pystac.Item.from_dict(make(tmp_path / name, str(tmp_path / name), stored, **options))
        with caplog.at_level(logging.WARNING):
            decided[name] = decide(item, band_assets(item, NO_B10))
    assert {name: (r.offset, r.decided_by) for name, r in decided.items()} == {
        "earth-true": (0, "metadata"),
        "computer": (-1000, "metadata"),
        "earth-wrong": (0, "pixels"),
        "earth-old": (0, "metadata"),
    }
    assert decided["computer"].metadata_said == "baseline 05.10, product-metadata's BOA_ADD_OFFSET"
    assert decided["computer"].pixels_showed.endswith(": the offset")
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith(
        "STAC item S2A_32UMU_20230615_0_L2A: its metadata says earthsearch:boa_offset_applied"
    )
    assert "but its pixels show B08: " in warnings[0] and warnings[0].endswith("no offset; offset 0 applied")
    # a scene without dark surfaces cannot disprove an offset: the metadata decides
    bright = np.random.default_rng(0).integers(2000, 5000, (64, 64), dtype=np.uint16)
    shown, showed = pixels_offset(bright)
    assert shown is None and showed == "0.0% of valid DNs under 900, 0.0% in [1000, 1100): no dark surface to tell"
    assert pixels_offset(np.zeros((8, 8), np.uint16)) == (None, "no valid pixel")
    # with the offset, a lake's NIR lies on both sides of 1000 (reflectance a little below 0 is what it keeps)
    lake = np.clip(np.random.default_rng(1).normal(1000 + 50, 40, (64, 16)), 1, None).astype(np.uint16)
    assert pixels_offset(np.hstack([bright, lake]))[0] == -1000 and (lake < 1000).mean() > 0.05
    assert pixels_offset(np.hstack([bright, lake - 1000 + 1]))[0] == 0  # the same lake without it


def test_the_pixels_are_checked_on_nir_and_the_decision_reaches_the_product(tmp_path: Path) -> None:
    """An RGB model's item is checked on the item's B08 all the same (blue has no dark floor to read); the
    offset decided is the product's, which turns DN into reflectance x 10,000."""
    _, stored = scene_pixels(1, 1000)  # the offset in the pixels, though the flag says it was taken out
    item = pystac.Item.from_dict(earth_search_item(tmp_path, str(tmp_path), stored, boa_offset_applied=True))
    product, radiometry = item_product(item, list(RGB_BANDS), mask_clouds=False)
    assert (radiometry.decided_by, radiometry.pixels_showed.split(":")[0]) == ("pixels", "B08")
    assert product.offsets == {"B04": -1000, "B03": -1000, "B02": -1000}
    assert product.to_eurosat_units("B04") == (1.0, -1000.0)
    _, stored = scene_pixels(1, 1000)
    computer = pystac.Item.from_dict(planetary_computer_item(tmp_path / "pc", str(tmp_path / "pc"), stored))
    assert item_product(computer, NO_B10, mask_clouds=False)[0].offsets == dict.fromkeys(NO_B10, -1000)


def test_a_search_url_becomes_pystac_clients_search() -> None:
    root, arguments = search_parameters(
        "https://earth-search.aws.element84.com/v1/search?collections=sentinel-2-l2a&bbox=8.9,48.7,9.1,48.8"
        "&datetime=2023-06-01/2023-06-30&ids=a,b&limit=5"
    )
    assert root == "https://earth-search.aws.element84.com/v1"
    assert arguments == {"collections": ["sentinel-2-l2a"], "ids": ["a", "b"], "bbox": (8.9, 48.7, 9.1, 48.8),
                         "limit": 5, "max_items": 5, "datetime": "2023-06-01/2023-06-30"}  # fmt: skip
    with pytest.raises(CatalogueError, match="unknown search parameter"):
        search_parameters("https://x.example/v1/search?collection=sentinel-2-l2a")
    with pytest.raises(CatalogueError, match="bbox is west,south,east,north"):
        search_parameters("https://x.example/v1/search?bbox=1,2,3")


def test_items_searches_and_item_collections_are_read_with_pystac(
    server: StacServer, tmp_path: Path, monkeypatch
) -> None:
    for variable in HTTP_DEFAULTS:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "7")  # the user's setting stays
    first, _ = publish(server, "earth-search", 1, 0, boa_offset_applied=True)
    publish(server, "earth-search", 3, 0, boa_offset_applied=True, date="20230710")
    publish(server, "earth-search", 2, 0, boa_offset_applied=True, date="20230620")  # served after July's
    item = load_items(first)
    assert [i.id for i in item.items] == ["S2A_32UMU_20230615_0_L2A"] and item.bbox is None
    assert {v: os.environ[v] for v in HTTP_DEFAULTS} == HTTP_DEFAULTS | {"GDAL_HTTP_MAX_RETRY": "7"}
    west, south, east, north = lon_lat_bbox()
    bbox = f"{west + 0.005},{south + 0.005},{east - 0.005},{north - 0.005}"
    june = load_items(f"{server.url}/search?collections=sentinel-2-l2a&bbox={bbox}&datetime=2023-06-01/2023-06-30")
    assert [i.id for i in june.items] == ["S2A_32UMU_20230615_0_L2A", "S2A_32UMU_20230620_0_L2A"]
    # by id, not in the order the catalogue serves them: every process of a DDP run holds them alike
    paged = load_items(f"{server.url}/search?collections=sentinel-2-l2a&limit=3").items
    assert [i.id[10:18] for i in paged] == ["20230615", "20230620", "20230710"]
    assert june.bbox == tuple(float(v) for v in bbox.split(","))
    assert len(load_items(f"{server.url}/search?collections=sentinel-2-l2a&limit=2").items) == 2
    assert [i.id for i in load_items(f"{server.url}/search?ids=S2A_32UMU_20230710_0_L2A").items] == [
        "S2A_32UMU_20230710_0_L2A"
    ]
    with pytest.raises(DataNotFoundError, match="holds no STAC items"):
        load_items(f"{server.url}/search?collections=sentinel-2-l2a&datetime=2024-01-01/2024-12-31")
    saved = tmp_path / "june.json"  # as `stac-client search ... --save` writes it
    saved.write_text(json.dumps({"type": "FeatureCollection", "features": [i.to_dict() for i in june.items]}))
    assert [i.id for i in load_items(saved).items] == [i.id for i in june.items]
    one = tmp_path / "one.json"
    one.write_text(json.dumps(item.items[0].to_dict()))
    assert [i.id for i in load_items(one).items] == ["S2A_32UMU_20230615_0_L2A"]


def test_failures_are_one_line_naming_the_url(server: StacServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # the messages, not the waiting: no retries (each backs off for seconds), and a short wait for an answer
    monkeypatch.setattr("eurosat_finetune.data.scenes.stac_items.HTTP_TIMEOUT_S", (0.25, 0.25))
    monkeypatch.setattr("eurosat_finetune.data.scenes.stac_items.HTTP_RETRIES", 0)
    missing = f"{server.url}/collections/sentinel-2-l2a/items/S2A_32UMU_20990101_0_L2A"
    with pytest.raises(CatalogueError) as not_there:
        load_items(missing)
    assert str(not_there.value) == (
        f"cannot read the STAC item(s) at {missing} (HTTP Error 404: Not Found); check the URL and that the "
        "catalogue is up"
    )
    down = f"http://127.0.0.1:{closed_port()}/v1/search?collections=sentinel-2-l2a"
    with pytest.raises(CatalogueError) as no_answer:
        load_items(down)
    assert str(no_answer.value).startswith(f"cannot read the STAC item(s) at {down} (") and "refused" in str(
        no_answer.value
    )
    silent = socket.socket()  # accepts connections and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    for quiet in (
        f"http://127.0.0.1:{port}/v1/search?collections=sentinel-2-l2a",
        f"http://127.0.0.1:{port}/v1/collections/sentinel-2-l2a/items/x",
    ):
        with pytest.raises(
            CatalogueError, match=rf"^cannot read the STAC item\(s\) at {re.escape(quiet)} \(.*timed out"
        ):
            load_items(quiet)
    silent.close()
    monkeypatch.setitem(sys.modules, "pystac", None)  # the stac extra not installed: its import fails
    with pytest.raises(CatalogueError, match=r"pip install 'eurosat-finetune\[stac\]'"):
        load_items(missing)


def test_a_busy_catalogue_is_asked_again(server: StacServer) -> None:
    """A catalogue that answers 503 (busy) is asked again (urllib3's first retry waits 0 s), and its item is read."""
    url, _ = publish(server, "earth-search", 1, 0, boa_offset_applied=True)
    server.busy = 1
    items = load_items(url)
    path = url.removeprefix(server.url)
    assert [item.id for item in items.items] == ["S2A_32UMU_20230615_0_L2A"] and server.api_requests == [path, path]


TOKEN = "st=2026-12-05T00%3A00%3A00Z&se=2099-01-01T00%3A00%3A00Z&sp=rl&sv=2021-06-08&sr=c&sig=test"


class _Tokens(BaseHTTPRequestHandler):
    """The Planetary Computer's SAS token endpoint, ``<sas_url>/<account>/<container>``, on 127.0.0.1."""

    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).asked.append(self.path)
        body = json.dumps({"msft:expiry": "2099-01-01T00:00:00Z", "token": TOKEN}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_planetary_computer_items_are_signed_and_others_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its blobs refuse unsigned requests: the Planetary Computer's items (by the host of the URL, or of a saved
    item's own link) have their hrefs signed by its package, with a token per blob container from its SAS
    endpoint (here one on 127.0.0.1: no network); Earth Search's are read as published."""
    import planetary_computer

    tokens = ThreadingHTTPServer(("127.0.0.1", 0), _Tokens)
    threading.Thread(target=tokens.serve_forever, daemon=True).start()
    monkeypatch.setenv("PC_SDK_SAS_URL", f"http://127.0.0.1:{tokens.server_port}/api/sas/v1/token")
    planetary_computer.settings.Settings.get.cache_clear()  # its settings are read once; read these
    monkeypatch.setattr(planetary_computer.sas, "TOKEN_CACHE", {})
    _, stored = scene_pixels(3, 1000)
    blobs = "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2"
    pc = planetary_computer_item(tmp_path / "pc", blobs.removesuffix("/sentinel2-l2"), stored)
    pc["links"] = [{"rel": "self", "href": f"https://{PLANETARY_COMPUTER}/api/stac/v1/collections/sentinel-2-l2a/items/"
                    f"{pc['id']}", "type": "application/geo+json"}]  # fmt: skip
    cogs = "https://sentinel-cogs.s3.us-west-2.amazonaws.com"
    es = earth_search_item(tmp_path / "es", cogs, scene_pixels(3, 0)[1], boa_offset_applied=True)
    saved = tmp_path / "items.json"  # as `stac-client search ... --save` writes them
    saved.write_text(json.dumps({"type": "FeatureCollection", "features": [pc, es]}))
    try:
        signed, unsigned = load_items(saved).items
    finally:
        tokens.shutdown()
        planetary_computer.settings.Settings.get.cache_clear()
    assert _Tokens.asked == ["/api/sas/v1/token/sentinel2l2a01/sentinel2-l2"]  # one token for the container
    paths = band_assets(signed, ["B04", "B8A", "SCL"])
    for band in ("B04", "B8A", "SCL"):
        assert signed.assets[band].href.startswith(blobs) and signed.assets[band].href.endswith(f"?{TOKEN}")
        assert paths[band].gdal_path == f"/vsicurl/{signed.assets[band].href}", band
    assert all("?" not in asset.href for asset in unsigned.assets.values())  # Earth Search: as published
    assert is_planetary_computer(f"https://{PLANETARY_COMPUTER}/api/stac/v1/search?collections=sentinel-2-l2a")

    monkeypatch.setitem(sys.modules, "planetary_computer", None)  # the extra not installed: its import fails
    with pytest.raises(CatalogueError, match=r"pip install 'eurosat-finetune\[planetary-computer\]'$"):
        load_items(saved)


def test_files_that_are_not_stac_items_and_items_without_clouds_classes_are_one_line(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"type": "Polygon", "coordinates": []}))
    with pytest.raises(CatalogueError) as not_stac:
        load_items(other)
    assert str(not_stac.value) == f"{other} is neither a STAC Item nor an ItemCollection"
    damaged = tmp_path / "damaged.json"
    damaged.write_text('{"type": "Feature", ')
    with pytest.raises(CatalogueError) as cut:
        load_items(damaged)
    assert str(cut.value).startswith(f"cannot read the STAC item(s) at {damaged} (Expecting property name")
    _, stored = scene_pixels(1, 0)
    published = earth_search_item(tmp_path / "es", str(tmp_path / "es"), stored, boa_offset_applied=True)
    del published["assets"]["scl"]
    with pytest.raises(BandError, match=r"no scene classification \(SCL\) asset, .*drop data.maps.mask_clouds"):
        band_assets(pystac.Item.from_dict(published), ["B04", "SCL"])


@pytest.mark.slow  # the full suite; the quick one maps an area of an item
def test_a_search_maps_its_bbox_alone_with_the_whole_scenes_pixels(server: StacServer) -> None:
    """The bbox, in the item's CRS, snapped outwards to its 10 m grid: the cropped scene's pixels are the
    whole scene's there, 20 m and 60 m bands resampled as for the whole scene."""
    publish(server, "earth-search", 1, 0, boa_offset_applied=True)
    west, south, east, north = lon_lat_bbox()
    bbox = (west + 0.004, south + 0.003, east - 0.006, north - 0.005)
    area = load_items(f"{server.url}/search?bbox={','.join(map(str, bbox))}")
    whole = load_items(f"{server.url}/search?collections=sentinel-2-l2a")
    ((cropped,), _), ((scene,), _) = (
        item_scenes(area, SceneOptions(), TRAINED),
        item_scenes(whole, SceneOptions(), TRAINED),
    )
    left, bottom, right, top = transform_bounds("EPSG:4326", "EPSG:32632", *bbox, densify_pts=21)
    grid = cropped.source.grid
    x0, y0 = grid.transform.c, grid.transform.f
    assert (x0 - ORIGIN[0]) % 10 == 0 and (ORIGIN[1] - y0) % 10 == 0  # on the scene's 10 m grid
    assert left - 10 < x0 <= left and top <= y0 < top + 10  # covering the bbox, no more
    assert right <= x0 + 10 * grid.width < right + 10 and bottom - 10 < y0 - 10 * grid.height <= bottom
    row, col = round((ORIGIN[1] - y0) / 10), round((x0 - ORIGIN[0]) / 10)
    pixels, valid = cropped.source.read_rows(0, grid.height)
    all_pixels, all_valid = scene.source.read_rows(0, SIZE)
    np.testing.assert_array_equal(pixels, all_pixels[:, row : row + grid.height, col : col + grid.width])
    np.testing.assert_array_equal(valid, all_valid[row : row + grid.height, col : col + grid.width])
    tags = cropped.tags()
    assert json.loads(tags["area_bbox"]) == list(bbox) and tags["stac_item"] == "S2A_32UMU_20230615_0_L2A"
    # by range requests, each COG fetched once (GDAL keeps what it fetched): the offset check's overview, the
    # area's rows and the whole scene's together cost the files' bytes
    sizes = {path.relative_to(server.files).as_posix(): path.stat().st_size for path in server.files.rglob("*.tif")}
    assert server.partial > 0 and sum(server.bytes_sent.values()) <= 1.1 * sum(sizes[f] for f in server.bytes_sent)


@pytest.mark.slow  # the full suite; the quick one masks clouds in a composite
def test_clouds_are_masked_by_the_items_scene_classification(server: StacServer) -> None:
    """``data.maps.mask_clouds``: the item's ``scl`` asset (20 m) read onto the grid, clouds no data."""
    _, stored = scene_pixels(1, 0)
    classes = np.full((SIZE // 2, SIZE // 2), 4, np.uint8)
    classes[:, SIZE // 4 :] = 9  # cloud, high probability: the right half
    server.add_item(earth_search_item(server.files, server.file_url("").rstrip("/"), stored, True, scl=classes))
    items = load_items(f"{server.url}/search?collections=sentinel-2-l2a")
    (clear,), (masked,) = (item_scenes(items, SceneOptions(mask_clouds=m), TRAINED)[0] for m in (False, True))
    assert clear.source.read_rows(0, SIZE)[1].all() and masked.tags()["cloud_masked"] == "true"
    valid = masked.source.read_rows(0, SIZE)[1]
    assert valid[:, : SIZE // 2].all() and not valid[:, SIZE // 2 :].any()


def test_an_earth_search_item_maps_as_its_pixels_stacked_without_offset(
    ms12: Path, server: StacServer, tmp_path: Path
) -> None:
    """The quick suite's end-to-end case: flag true, pixels without offset, raster:bands still saying -0.1."""
    url, stored = publish(server, "earth-search", 1, 0, boa_offset_applied=True)
    stack = stacked_reference(tmp_path / "stack", "L1C", stored, 0, NO_B10, 10_000)
    maps = predict(ms12, url, tmp_path / "l-item")
    cells, tags = classes_and_tags(maps / "S2A_32UMU_20230615_0_L2A.classes.tif")
    reference, _ = classes_and_tags(predict(ms12, stack.parent, tmp_path / "l-stack") / "stack.classes.tif")
    np.testing.assert_array_equal(cells, reference)
    assert tags["stac_item"] == "S2A_32UMU_20230615_0_L2A" and tags["processing_level"] == "L2A"
    assert tags["product"] == "S2A_MSIL2A_20230615T103031_N0510_R108_T32UMU_20230615T170036"  # ESA's, s2:product_uri
    assert tags["stac_item_href"] == url  # which catalogue (the collection's name is every catalogue's)
    assert tags["datetime"] == "2023-06-15T10:30:31.024000+00:00" and tags["processing_baseline"] == "05.10"
    assert json.loads(tags["offsets_applied"]) == dict.fromkeys(NO_B10, 0) and tags["offset_decided_by"] == "metadata"
    assert tags["offset_metadata"].startswith("earthsearch:boa_offset_applied true")
    # the sidecar: the same, as JSON for tools that read no GeoTIFF tags
    sidecar = json.loads((maps / "S2A_32UMU_20230615_0_L2A.json").read_text())
    assert sidecar["map"] == "S2A_32UMU_20230615_0_L2A.classes.tif" and sidecar["crs"] == "EPSG:32632"
    assert sidecar["classes"] == json.loads(tags["class_names"]) and sidecar["width"] == cells.shape[1]
    source = sidecar["source"]
    assert set(source) == {key for key in tags if not key.startswith("class_")} - {"AREA_OR_POINT"}  # GDAL's own
    assert source["offsets_applied"] == dict.fromkeys(NO_B10, 0) and source["processing_baseline"] == "05.10"
    assert all(source[key] == tags[key] for key in ("stac_item", "stac_item_href", "datetime", "offset_metadata"))


@pytest.mark.slow  # two end-to-end runs each: the full suite
@pytest.mark.parametrize(
    ("catalogue", "in_pixels", "options", "decided_by"),
    [
        ("planetary-computer", 1000, {"baseline": "05.10"}, "metadata"),
        ("earth-search", 0, {"boa_offset_applied": False}, "pixels"),  # the flag contradicts the pixels
        ("earth-search", 1000, {"boa_offset_applied": True}, "pixels"),  # ... the other way
    ],
)
def test_each_catalogues_item_maps_as_its_pixels_stacked_without_offset(
    catalogue: str,
    in_pixels: int,
    options: dict,
    decided_by: str,
    ms12: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = StacServer(tmp_path / "files")
    try:
        url, stored = publish(server, catalogue, 2, in_pixels, **options)
        stack = stacked_reference(tmp_path / "stack", "L1C", stored, in_pixels, NO_B10, 10_000)
        with caplog.at_level(logging.WARNING):
            maps = predict(ms12, url, tmp_path / "l-item")
    finally:
        server.close()
    cells, tags = classes_and_tags(next(maps.glob("*.classes.tif")))
    reference, _ = classes_and_tags(predict(ms12, stack.parent, tmp_path / "l-stack") / "stack.classes.tif")
    np.testing.assert_array_equal(cells, reference)
    assert json.loads(tags["offsets_applied"]) == dict.fromkeys(NO_B10, -in_pixels)
    assert tags["offset_decided_by"] == decided_by
    warned = [r.getMessage() for r in caplog.records if "its metadata says" in r.getMessage()]
    assert len(warned) == (decided_by == "pixels") and all("\n" not in w for w in warned)


@pytest.mark.slow  # end-to-end runs: the full suite
def test_a_search_and_an_item_collection_map_each_item(ms12: Path, server: StacServer, tmp_path: Path) -> None:
    """A search with a bbox: one map per item, of the bbox alone; the same items saved as an
    ItemCollection file: one map per item, of the whole scene, read by two DataLoader workers."""
    urls = [publish(server, "earth-search", 1, 0, boa_offset_applied=True)[0]]
    urls.append(publish(server, "planetary-computer", 2, 1000, sensing="20230620T103031")[0])
    west, south, east, north = lon_lat_bbox()
    bbox = (west + 0.004, south + 0.003, east - 0.006, north - 0.005)
    search = f"{server.url}/search?collections=sentinel-2-l2a&bbox={','.join(map(str, bbox))}"
    maps = predict(ms12, f"{search}&datetime=2023-06-01/2023-06-30", tmp_path / "l-search")
    names = sorted(path.name for path in maps.glob("*.classes.tif"))
    assert names == [f"{url.rsplit('/', 1)[1]}.classes.tif" for url in urls]  # the items' ids
    left, bottom, right, top = transform_bounds("EPSG:4326", "EPSG:32632", *bbox, densify_pts=21)
    for name in names:
        with rasterio.open(maps / name) as source:
            mapped = source.bounds  # whole map cells (160 m) from the bbox's corner on the 10 m grid
        assert left - 10 < mapped.left <= left and top <= mapped.top < top + 10
        assert right <= mapped.right < right + 160 and bottom - 160 < mapped.bottom <= bottom
    saved = tmp_path / "items.json"
    items = load_items(search).items
    saved.write_text(json.dumps({"type": "FeatureCollection", "features": [item.to_dict() for item in items]}))
    whole = predict(ms12, saved, tmp_path / "l-collection", "--data.loader.num_workers=2")  # read in workers
    for name in names:
        with rasterio.open(whole / name) as source:
            assert source.shape == (SIZE // 16, SIZE // 16) and "area_bbox" not in source.tags()


@pytest.mark.slow  # end-to-end runs: the full suite
def test_a_missing_band_item_or_catalogue_is_one_line(
    ms12: Path, server: StacServer, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _, stored = scene_pixels(1, 0)
    del stored["B05"]
    url = server.add_item(earth_search_item(server.files, server.file_url("").rstrip("/"), stored, True))
    missing = f"{server.url}/collections/sentinel-2-l2a/items/S2A_32UMU_20990101_0_L2A"
    down = f"http://127.0.0.1:{closed_port()}/v1/search?collections=sentinel-2-l2a"
    expected = {
        url: "eurosat: error: STAC item S2A_32UMU_20230615_0_L2A has no cloud-optimised GeoTIFF asset of band B05",
        missing: f"eurosat: error: cannot read the STAC item(s) at {missing} (HTTP Error 404: Not Found)",
        down: f"eurosat: error: cannot read the STAC item(s) at {down} ([Errno 111] Connection refused)",
    }
    for root, start in expected.items():
        error = cli_error(["predict", *FAST, f"--ckpt_path={ms12}", f"--data.predict_root={root}",
                           f"--trainer.default_root_dir={tmp_path / 'runs'}"], capsys)  # fmt: skip
        assert "Traceback" not in error and len(error.strip().splitlines()) == 1, error
        assert error.startswith(start), error


DATES = ("20230615", "20230620", "20230710")
TWO_CLOUDY = (slice(0, 48), slice(120, 192))  # 10 m rows and columns, whole 60 m pixels: cloudy on two dates
ONE_CLOUDY = (slice(96, 120), slice(120, 168))  # cloudy on the first date only
ALL_CLOUDY = (slice(168, 192), slice(168, 192))  # cloudy on every date: no data
INSIDE_BBOX = (slice(72, 120), slice(60, 108))  # within the end-to-end test's bbox
MARGIN = 16  # 10 m px of SCL cloud beyond the bright pixels, past what resampling the 60 m bands spreads


def publish_cloudy(
    server: StacServer, seed: int, date: str, clouds: list[tuple[slice, slice]], in_pixels: int = 0
) -> str:
    """An Earth Search item of ``date`` whose bands are bright (9,000) over each of ``clouds`` (10 m rows and
    columns, on each band's own grid) and whose SCL says cloud there and ``MARGIN`` around; its files hold the
    offset ``in_pixels`` (0 or 1000, its flag saying which)."""
    _, stored = scene_pixels(seed, in_pixels)
    classes = np.full((SIZE // 2, SIZE // 2), 4, np.uint8)
    for rows, cols in clouds:
        for pixels in stored.values():
            factor = SIZE // pixels.shape[0]
            pixels[rows.start // factor : rows.stop // factor, cols.start // factor : cols.stop // factor] = 9000
        top, left = max(0, rows.start - MARGIN) // 2, max(0, cols.start - MARGIN) // 2
        classes[top : (rows.stop + MARGIN) // 2, left : (cols.stop + MARGIN) // 2] = 9
    item = earth_search_item(
        server.files, server.file_url("").rstrip("/"), stored, not in_pixels, date=date, scl=classes
    )
    return server.add_item(item)


def test_a_median_composite_leaves_out_each_dates_clouds(server: StacServer) -> None:
    """Three dates of one tile: where two are cloudy the composite is the clear date's pixels, elsewhere the
    median of the dates clear there; cloudy in every date, no data. Read in blocks as the map reads it. The
    last date's files hold the offset (the others' not, as around baseline 04.00's start): each item's own."""
    publish_cloudy(server, 1, DATES[0], [TWO_CLOUDY, ONE_CLOUDY, ALL_CLOUDY])
    publish_cloudy(server, 2, DATES[1], [TWO_CLOUDY, ALL_CLOUDY])
    publish_cloudy(server, 3, DATES[2], [ALL_CLOUDY], in_pixels=1000)
    items = load_items(f"{server.url}/search?collections=sentinel-2-l2a")
    composite, _ = composite_scene(items, SceneOptions(composite="median"), TRAINED)
    assert composite.name == f"composite_{DATES[0]}_{DATES[-1]}"
    source = composite.source
    step = source.block_rows()
    blocks = [source.read_rows(top, min(top + step, SIZE)) for top in range(0, SIZE, step)]
    pixels, valid = np.concatenate([b[0] for b in blocks], axis=1), np.concatenate([b[1] for b in blocks])
    dates = [s.source.read_rows(0, SIZE) for s in item_scenes(items, SceneOptions(mask_clouds=True), TRAINED)[0]]
    stack = np.stack([p for p, _ in dates]).astype(np.float64)
    clear = np.stack([v for _, v in dates])
    only_third = ~clear[0] & ~clear[1] & clear[2]
    assert only_third[TWO_CLOUDY].all()
    np.testing.assert_array_equal(pixels[:, only_third], dates[2][0][:, only_third])
    assert pixels[:, TWO_CLOUDY[0], TWO_CLOUDY[1]].max() < 9000  # no cloud left
    everywhere = clear.all(axis=0)
    np.testing.assert_array_equal(pixels[:, everywhere], np.median(stack, axis=0)[:, everywhere])
    two = clear[1] & clear[2] & ~clear[0]
    assert two[ONE_CLOUDY].all()
    np.testing.assert_array_equal(pixels[:, two], np.rint((stack[1] + stack[2]) / 2)[:, two])
    assert not valid[ALL_CLOUDY].any() and (pixels[:, ~valid] == 0).all() and valid.mean() > 0.95
    tags = composite.tags()
    assert tags["composite"] == "median" and tags["cloud_masked"] == "true"
    used = json.loads(tags["stac_items"])
    assert [item["stac_item"] for item in used] == [f"S2A_32UMU_{date}_0_L2A" for date in DATES]
    assert [item["offsets_applied"] for item in used] == [dict.fromkeys(NO_B10, offset) for offset in (0, 0, -1000)]
    assert used[0]["offset_decided_by"] == "metadata" and used[0]["datetime"].startswith("2023-06-15")
    assert source.preview(48, 48).shape == (3, 48, 48)


def constant_item(server: StacServer, value: int, tile: str, origin: tuple[float, float], date: str) -> None:
    """An Earth Search item of ``tile`` (from ``origin`` in its UTM zone) whose every band holds ``value``."""
    _, stored = scene_pixels(1, 0)
    flat = {band: np.full_like(pixels, value) for band, pixels in stored.items()}
    base = server.file_url("").rstrip("/")
    server.add_item(earth_search_item(server.files, base, flat, True, date=date, tile=tile, origin=origin))


@pytest.mark.slow  # the full suite; the quick one keeps a composite of one tile
def test_a_composite_puts_other_tiles_and_utm_zones_onto_the_grid_covering_most_of_the_area(
    server: StacServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A bbox beyond one tile's east and south edges: the composite's grid is that tile's lattice over the whole
    bbox; a tile of the same zone to the east is cut onto it (its own pixels, each in its place), one of the
    next UTM zone to the south warped onto it (a constant stays that constant); where one item alone reaches,
    its pixels; where two do, their mean."""
    publish_cloudy(server, 1, DATES[0], [])
    east = (ORIGIN[0] + 960, ORIGIN[1])  # half a scene east, on the zone's 60 m lattice: pixels of its own
    _, stored = scene_pixels(2, 0)
    base = server.file_url("").rstrip("/")
    server.add_item(earth_search_item(server.files, base, stored, True, date=DATES[1], tile="32UNU", origin=east))
    x, y = rasterio.warp.transform("EPSG:32632", "EPSG:32633", [ORIGIN[0]], [ORIGIN[1] - 960])
    south = (round(x[0] / 60) * 60, round(y[0] / 60) * 60)  # half a scene south, in UTM zone 33
    constant_item(server, 3000, "33UUP", south, DATES[2])
    bbox = transform_bounds("EPSG:32632", "EPSG:4326", ORIGIN[0], ORIGIN[1] - 2400, ORIGIN[0] + 2400, ORIGIN[1])
    items = load_items(f"{server.url}/search?bbox={','.join(map(str, bbox))}")
    with caplog.at_level(logging.INFO, logger="eurosat_finetune"):
        composite, _ = composite_scene(items, SceneOptions(composite="median"), TRAINED)
    grid = composite.source.grid
    col, row = round((grid.transform.c - ORIGIN[0]) / 10), round((ORIGIN[1] - grid.transform.f) / 10)
    assert grid.crs == "EPSG:32632" and (grid.transform.c - ORIGIN[0]) % 10 == 0  # the first tile's lattice
    assert col <= 0 and row <= 0 and grid.width + col >= 240 and grid.height + row >= 240  # the whole bbox
    pixels, valid = composite.source.read_rows(0, grid.height)
    first = load_items(f"{server.url}/search?ids=S2A_32UMU_{DATES[0]}_0_L2A")
    (alone,), _ = item_scenes(first, SceneOptions(mask_clouds=True), TRAINED)
    own, _ = alone.source.read_rows(0, SIZE)
    neighbour = load_items(f"{server.url}/search?ids=S2A_32UNU_{DATES[1]}_0_L2A")
    (its,), _ = item_scenes(neighbour, SceneOptions(mask_clouds=True), TRAINED)
    theirs, _ = its.source.read_rows(0, SIZE)  # its own grid: 96 columns east of the first tile's

    def at(rows: slice, cols: slice) -> tuple[slice, slice]:  # the first tile's rows and columns on the grid
        return slice(rows.start - row, rows.stop - row), slice(cols.start - col, cols.stop - col)

    # the southern tile's top edge, at row 96 where it starts, climbs eastwards (its zone's grid is turned
    # about 4.5 degrees): rows above 60 are clear of it
    only_first = at(slice(4, 60), slice(4, 90))  # west of the east tile, north of the southern one
    np.testing.assert_array_equal(pixels[(slice(None), *only_first)], own[:, 4:60, 4:90])
    only_east = at(slice(4, 60), slice(SIZE + 2, 236))  # the neighbour's pixels, where none resampled
    np.testing.assert_array_equal(pixels[(slice(None), *only_east)], theirs[:, 4:60, SIZE + 2 - 96 : 236 - 96])
    assert valid[only_east].all()
    only_south = at(slice(SIZE + 4, 236), slice(30, 150))  # inside the turned tile, away from its edges
    assert (pixels[(slice(None), *only_south)] == 3000).all() and valid[only_south].all()
    both = at(slice(4, 60), slice(100, 188))  # the first and the eastern tile: the mean of the two
    mean = np.rint((own[:, 4:60, 100:188] + theirs[:, 4:60, 4:92].astype(np.float64)) / 2)
    np.testing.assert_array_equal(pixels[(slice(None), *both)], mean)
    placed = {item["stac_item"]: item["grid"] for item in json.loads(composite.tags()["stac_items"])}
    assert placed == {
        f"S2A_32UMU_{DATES[0]}_0_L2A": "own pixels",
        f"S2A_32UNU_{DATES[1]}_0_L2A": "own pixels",
        f"S2A_33UUP_{DATES[2]}_0_L2A": "warped from EPSG:32633",
    }
    (said,) = [r.getMessage() for r in caplog.records if "composite=median: the grid" in r.getMessage()]
    assert said.endswith(
        f"2 item(s) of other tiles put onto it: S2A_32UNU_{DATES[1]}_0_L2A (own pixels), "
        f"S2A_33UUP_{DATES[2]}_0_L2A (warped from EPSG:32633)"
    )


def test_a_composite_refuses_items_without_scl(server: StacServer) -> None:
    """Every item needs its scene classification, and only STAC items are composited."""
    publish_cloudy(server, 1, DATES[0], [])
    publish_cloudy(server, 3, DATES[2], [])
    items = load_items(f"{server.url}/search?collections=sentinel-2-l2a")
    del items.items[1].assets["scl"]
    with pytest.raises(BandError, match=rf"{items.items[1].id} has no scene classification .*composite=none$"):
        composite_scene(items, SceneOptions(composite="median"), TRAINED)
    products = PredictInputs(Path("products"), [Path("products/a.SAFE")], [])  # no STAC items: nothing to composite
    with pytest.raises(
        ConfigError, match=r"^data\.maps\.composite=median composites STAC items .*drop data\.maps\.composite$"
    ):
        products.loaders(SceneOptions(composite="median"), TRAINED, None, 4, 0)


@pytest.mark.slow  # end-to-end runs: the full suite
def test_a_search_maps_one_cloud_free_composite_of_its_bbox(ms12: Path, server: StacServer, tmp_path: Path) -> None:
    """``--data.maps.composite=median``: one map of the bbox for three dates, two of them cloudy over the same
    block, the same classes as the clear date's own map; read by two DataLoader workers."""
    for date in DATES:
        publish_cloudy(server, 1, date, [INSIDE_BBOX] if date != DATES[-1] else [])
    west, south, east, north = lon_lat_bbox()
    bbox = ",".join(map(str, (west + 0.004, south + 0.003, east - 0.006, north - 0.005)))
    search = f"{server.url}/search?collections=sentinel-2-l2a&bbox={bbox}"
    maps = predict(ms12, f"{search}&datetime=2023-06-01/2023-07-31", tmp_path / "l-composite",
                   "--data.maps.composite=median", "--data.loader.num_workers=2")  # fmt: skip
    assert [path.name for path in maps.glob("*.classes.tif")] == [f"composite_{DATES[0]}_{DATES[-1]}.classes.tif"]
    cells, tags = classes_and_tags(maps / f"composite_{DATES[0]}_{DATES[-1]}.classes.tif")
    clear = predict(ms12, f"{search}&ids=S2A_32UMU_{DATES[-1]}_0_L2A", tmp_path / "l-clear")
    reference, _ = classes_and_tags(clear / f"S2A_32UMU_{DATES[-1]}_0_L2A.classes.tif")
    np.testing.assert_array_equal(cells, reference)
    assert tags["composite"] == "median" and len(json.loads(tags["stac_items"])) == 3 and "area_bbox" in tags


@pytest.mark.slow  # three 1,536 px items and an end-to-end run: the full suite
def test_a_search_fetches_only_the_tiles_of_its_bbox(ms12: Path, server: StacServer, tmp_path: Path) -> None:
    """Three dates of a scene six 256 px tiles a side, clouds over part of the bbox in two of them, and a bbox
    of about 7 x 7 km inside it: one composite of the bbox, its cloud gone, for at most 1.3 times the bytes of
    the tiles that intersect the bbox (the goal; GDAL reads whole 16 KB chunks, file headers and overviews)."""
    size, base = 1536, server.file_url("").rstrip("/")
    cloud = (slice(600, 800), slice(600, 800))  # 10 m rows and columns, inside the bbox
    for i, date in enumerate(DATES):
        _, stored = scene_pixels(1, 0, size)
        classes = np.full((size // 2, size // 2), 4, np.uint8)
        if i < 2:
            for pixels in stored.values():
                f = size // pixels.shape[0]
                pixels[cloud[0].start // f : cloud[0].stop // f, cloud[1].start // f : cloud[1].stop // f] = 9000
            classes[280:420, 280:420] = 9  # the cloud and 40 m around it
        server.add_item(earth_search_item(server.files, base, stored, True, date=date, scl=classes, block=256))
    x0, y0 = ORIGIN
    bbox = list(transform_bounds("EPSG:32632", "EPSG:4326", x0 + 4000, y0 - 11000, x0 + 11000, y0 - 4000))
    server.bytes_sent.clear()
    search = f"{server.url}/search?collections=sentinel-2-l2a&bbox={','.join(map(str, bbox))}"
    # one reading process: with several, each boundary between their shares costs one more tile row of the
    # 20 m and 60 m files (the resampling kernel reaches across it), a share that shrinks as the area grows
    maps = predict(ms12, search, tmp_path / "logs", "--data.maps.composite=median", "--data.loader.num_workers=0")
    composite = f"composite_{DATES[0]}_{DATES[-1]}.classes.tif"
    assert [path.name for path in maps.glob("*.classes.tif")] == [composite]
    with rasterio.open(maps / composite) as source:
        left, bottom, right, top = transform_bounds(source.crs, "EPSG:4326", *source.bounds)
        cells = source.read(1)
    assert abs(left - bbox[0]) < 0.001 and abs(top - bbox[3]) < 0.001 and right >= bbox[2] and bottom <= bbox[1]
    assert cells.shape[0] < 50 and (cells != 255).all()  # the bbox alone (about 700 px at 10 m), no cloud left
    fetched = sum(server.bytes_sent.values())
    tiles = sum(tile_bytes(server.files / path, bbox) for path in server.bytes_sent)
    assert server.partial > 0 and fetched <= 1.3 * tiles, (fetched, tiles)
    print(f"bytes fetched {fetched:,}, the area's tiles {tiles:,}: {fetched / tiles:.2f} times")


@pytest.mark.slow  # the full suite; the quick one keeps a failing search
def test_of_several_items_one_that_fails_is_left_out_and_named(
    server: StacServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A band file gone (404) from one of two items: the other is mapped, the failed one named with why; both
    gone is the error, in one line."""
    publish_cloudy(server, 1, DATES[0], [])
    publish_cloudy(server, 2, DATES[1], [])
    items = load_items(f"{server.url}/search?collections=sentinel-2-l2a")
    (next(server.files.rglob(f"*{DATES[1]}*/B05.tif"))).unlink()
    with caplog.at_level(logging.WARNING):
        scenes, left_out = item_scenes(items, SceneOptions(), TRAINED)
    assert [scene.name for scene in scenes] == [f"S2A_32UMU_{DATES[0]}_0_L2A"]
    (why,) = left_out
    assert why.startswith(f"S2A_32UMU_{DATES[1]}_0_L2A (cannot read /vsicurl/{server.url}/") and why.endswith("again)")
    (said,) = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert said == f"1 of 2 STAC item(s) left out, the others are mapped: {why}"
    for date in (DATES[2], "20230801"):  # two items never opened (GDAL keeps what it read of the others)
        publish_cloudy(server, 3, date, [])
        next(server.files.rglob(f"*{date}*/B05.tif")).unlink()
    gone = load_items(f"{server.url}/search?datetime=2023-07-01/2023-08-31")
    first = rf"^none of the 2 STAC items could be mapped; the first, S2A_32UMU_{DATES[2]}_0_L2A: cannot read"
    with pytest.raises(UnreadableImageError, match=first):
        item_scenes(gone, SceneOptions(), TRAINED)


def test_an_area_maps_part_of_an_item_and_one_outside_it_is_refused(server: StacServer) -> None:
    """``data.maps.area`` crops an item given by URL as a search's bbox does; an area the item does not reach is
    one line; an area that is not west, south, east, north is refused when the options are made."""
    url, _ = publish(server, "earth-search", 1, 0, boa_offset_applied=True)
    west, south, east, north = lon_lat_bbox()
    bbox = (west + 0.004, south + 0.003, east - 0.006, north - 0.005)
    searched = load_items(f"{server.url}/search?bbox={','.join(map(str, bbox))}")
    ((by_search,), _), ((by_area,), _) = (
        item_scenes(searched, SceneOptions(), TRAINED),
        item_scenes(load_items(url), SceneOptions(area=bbox), TRAINED),
    )
    assert by_area.source.grid == by_search.source.grid and by_area.source.grid.width < SIZE
    np.testing.assert_array_equal(by_area.source.read_rows(0, 64)[0], by_search.source.read_rows(0, 64)[0])
    with pytest.raises(OutsideAreaError, match=r"S2A_32UMU_20230615_0_L2A does not reach the area \[10\.0, 40\.0"):
        item_scenes(load_items(url), SceneOptions(area=(10.0, 40.0, 10.1, 40.1)), TRAINED)
    with pytest.raises(ConfigError, match=r"^data\.maps\.area=\[9\.1, 48\.0, 9\.0, 49\.0\]: give \[west, south, east"):
        SceneOptions(area=(9.1, 48.0, 9.0, 49.0))


@pytest.mark.slow  # an end-to-end run: the full suite
def test_a_search_maps_the_items_it_can_and_names_the_others_at_the_end(
    ms12: Path, server: StacServer, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    publish_cloudy(server, 1, DATES[0], [])
    publish_cloudy(server, 2, DATES[1], [])
    next(server.files.rglob(f"*{DATES[1]}*/B05.tif")).unlink()
    maps = predict(ms12, f"{server.url}/search?collections=sentinel-2-l2a", tmp_path / "logs")
    assert sorted(path.name for path in maps.glob("*.classes.tif")) == [f"S2A_32UMU_{DATES[0]}_0_L2A.classes.tif"]
    (said,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Not mapped")]
    assert said.startswith(f"Not mapped, 1 scene left out: S2A_32UMU_{DATES[1]}_0_L2A (cannot read")


@pytest.mark.slow  # the full suite; the quick one maps an area of an item
def test_an_areas_blocks_begin_where_its_files_tile_rows_do(server: StacServer) -> None:
    """A bbox starting inside a tile row: the blocks of window rows are counted from the files' tile rows, so
    a reader's share never ends inside one (each tile row fetched by one reader); the windows stay on the
    area's own grid."""
    from eurosat_finetune.data.scenes.windows import SceneWindows

    _, stored = scene_pixels(1, 0, 768)
    server.add_item(earth_search_item(server.files, server.file_url("").rstrip("/"), stored, True, block=256))
    x0, y0 = ORIGIN
    bbox = transform_bounds("EPSG:32632", "EPSG:4326", x0 + 2000, y0 - 6500, x0 + 6500, y0 - 2000)
    items = load_items(f"{server.url}/search?bbox={','.join(map(str, bbox))}")
    (scene,), _ = item_scenes(items, SceneOptions(window=16), TRAINED)
    above = scene.source.rows_above
    assert above == round((y0 - scene.source.grid.transform.f) / 10) and above % 256  # inside a tile row
    blocks = SceneWindows.blocks_of(0, scene)
    starts = [above + scene.top(block.first) for block in blocks[1:]]
    assert starts and all(start % 256 < 16 for start in starts)  # the first window row of each tile row
    halves = [SceneWindows([scene], 64, rank, 2).own for rank in (0, 1)]
    assert halves[0] and halves[1] and halves[0] + halves[1] == blocks


@pytest.mark.parametrize("items", [1, 2, 3, 4, 7, 9, 12])  # the sorting network (up to 8 dates), then np.sort
def test_the_composites_median_is_numpys_nanmedian(items: int) -> None:
    from eurosat_finetune.data.scenes.stac_composites import median_of

    rng = np.random.default_rng(items)
    values = rng.integers(1, 10_000, (items, 2, 40, 30)).astype(np.float32)
    values = np.where(rng.random((items, 1, 40, 30)) < 0.4, np.float32(np.nan), values)  # no data in ~40 % ...
    values[:, :, :3, :3] = np.nan  # ... and in none of the items here
    expected = values.copy()
    middle, valid = median_of(values)
    assert (valid == ~np.isnan(expected[:, 0]).all(axis=0)).all() and not valid[:3, :3].any()
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        np.testing.assert_allclose(middle[:, valid], np.nanmedian(expected, axis=0)[:, valid], rtol=1e-6)


@pytest.mark.slow  # an end-to-end run: the full suite
def test_a_band_file_failing_while_read_leaves_that_item_out_and_maps_the_others(
    ms12: Path, server: StacServer, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server answers 500 for one item's B03 once its header is read (the item opens): that item's map is
    not written and the end of the run names it; the other item maps. Read by two DataLoader workers."""
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")  # the user's setting: no retries, so the test is quick
    publish_cloudy(server, 1, DATES[0], [])
    publish_cloudy(server, 2, DATES[1], [])
    server.broken.add(next(server.files.rglob(f"*{DATES[1]}*/B03.tif")).relative_to(server.files).as_posix())
    search = f"{server.url}/search?collections=sentinel-2-l2a"
    maps = predict(ms12, search, tmp_path / "logs", "--data.loader.num_workers=2")
    assert sorted(path.name for path in maps.glob("*.classes.tif")) == [f"S2A_32UMU_{DATES[0]}_0_L2A.classes.tif"]
    (said,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Not mapped")]
    assert said.startswith(f"Not mapped, 1 scene left out: S2A_32UMU_{DATES[1]}_0_L2A (cannot read /vsicurl/")
    assert "IReadBlock failed" in said or "HTTP" in said  # GDAL's own words, not "see previous exception"
    # one item, failing: the error, in one line (an item never read here: GDAL keeps what this process read)
    publish_cloudy(server, 3, DATES[2], [])
    server.broken.add(next(server.files.rglob(f"*{DATES[2]}*/B03.tif")).relative_to(server.files).as_posix())
    alone = f"{search}&ids=S2A_32UMU_{DATES[2]}_0_L2A"
    error = cli_error(["predict", *FAST, f"--ckpt_path={ms12}", f"--data.predict_root={alone}",
                       f"--trainer.default_root_dir={tmp_path / 'none'}"], capsys)  # fmt: skip
    last = error.strip().splitlines()[-1]
    assert last.startswith(f"eurosat: error: no scene could be mapped: S2A_32UMU_{DATES[2]}_0_L2A (cannot read")


@pytest.mark.slow  # the full suite; the quick one keeps a failing search
def test_a_scene_that_fails_while_read_is_one_batch_saying_so(
    server: StacServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the dataset: the failed scene's block becomes a batch of no windows naming it; its other blocks are
    not read; the other scene's windows all come."""
    from eurosat_finetune.data.scenes.windows import SceneWindows

    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")  # GDAL would retry the 500s for seconds

    publish_cloudy(server, 1, DATES[0], [])
    publish_cloudy(server, 2, DATES[1], [])
    server.broken.add(next(server.files.rglob(f"*{DATES[1]}*/B03.tif")).relative_to(server.files).as_posix())
    scenes, _ = item_scenes(load_items(f"{server.url}/search?collections=sentinel-2-l2a"), SceneOptions(), TRAINED)
    windows = SceneWindows(scenes, 64)
    batches = list(windows)
    failures = [failed for batch in batches for failed in batch["failed"]]
    assert [scene for scene, _ in failures] == [1] and "cannot read /vsicurl/" in failures[0][1]
    assert sum(len(batch["images"]) for batch in batches) == scenes[0].window_count
    assert all((batch["scene"] == 0).all() for batch in batches)
