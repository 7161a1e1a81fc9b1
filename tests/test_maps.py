"""Land-cover maps: `eurosat predict` on whole scenes (real GeoTIFFs written with rasterio)."""

import csv
import io
import json
import logging
import shutil
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import FAST, REAL_ZIP, REPO, TINY_VIT, cli_error, run_cli, version_dir
from helpers.legend_read_back import check_legend
from PIL import Image
from rasterio.shutil import copy
from rasterio.transform import from_origin

from eurosat_finetune.data.patches.published import EUROSAT_CLASSES
from eurosat_finetune.data.patches.splits import stratified_split
from eurosat_finetune.model import ImageClassifier

TINY_MODEL = ["--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]
ORIGIN = from_origin(500_000, 5_000_000, 10, 10)  # UTM 32N, 10 m pixels as Sentinel-2's RGB bands


@pytest.fixture(scope="module")
def checkpoint(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ViT trained one epoch on the 32 px sample (EuroSAT's class names)."""
    logs = tmp_path_factory.mktemp("fit")
    run_cli(["fit", *FAST, *TINY_MODEL, f"--data.root={sample_root}", "--trainer.max_epochs=1",
             "--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={logs}"])  # fmt: skip
    return version_dir(logs, 0) / "checkpoints" / "best.ckpt"


def write_raster(path: Path, pixels: np.ndarray, crs: str | None = "EPSG:32632", **profile: object) -> Path:
    count, height, width = pixels.shape
    with rasterio.open(
        path, "w", driver="GTiff", height=height, width=width, count=count, dtype=pixels.dtype, crs=crs,
        transform=ORIGIN if crs else rasterio.Affine.identity(), **profile,
    ) as dst:  # fmt: skip
        dst.write(pixels)
    return path


def predict(checkpoint: Path, root: Path, logs: Path, *options: str) -> Path:
    run_cli(["predict", *FAST, f"--ckpt_path={checkpoint}", f"--data.predict_root={root}", "--trainer.logger=CSVLogger",
             f"--trainer.logger.save_dir={logs}", *options])  # fmt: skip
    return version_dir(logs, 0)


def read_band(path: Path) -> np.ndarray:
    with rasterio.open(path) as source:
        return source.read(1)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_ZIP.is_file(), reason="needs ../shared/data/EuroSAT_RGB.zip")
def test_map_of_a_mosaic_of_real_tiles_equals_each_tile_classified_alone(checkpoint: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(REAL_ZIP) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
        classes = sorted({n.split("/")[1] for n in names})
        test = stratified_split([classes.index(n.split("/")[1]) for n in names], 0.1, 0.2, 0).test
        picked = [names[i] for i in np.random.default_rng(0).choice(test, 64, replace=False)]
        tiles = [np.asarray(Image.open(io.BytesIO(archive.read(n))).convert("RGB")) for n in picked]
    root = tmp_path / "scenes"
    root.mkdir()
    for i, tile in enumerate(tiles):  # each tile on its own, lossless, as a photo (no CRS: classified whole)
        Image.fromarray(tile).save(root / f"tile_{i // 8}_{i % 8}.png")
    mosaic = np.concatenate([np.concatenate(tiles[r * 8 : r * 8 + 8], axis=1) for r in range(8)])  # 512 x 512 x 3
    write_raster(root / "mosaic.tif", np.ascontiguousarray(mosaic.transpose(2, 0, 1)))
    # the same mosaic as Sentinel-2 ships its true-colour image: a georeferenced JPEG 2000 (lossless here)
    copy(root / "mosaic.tif", root / "T32TMT_20240601T103031_TCI_10m.jp2", driver="JP2OpenJPEG", REVERSIBLE="YES",
         QUALITY=100)  # fmt: skip

    run = predict(checkpoint, root, tmp_path / "logs", "--data.maps.window=64")
    with open(run / "predictions.csv") as f:
        alone = {Path(row["path"]).stem: row["predicted_class"] for row in csv.DictReader(f)}
    assert len(alone) == 64 and "mosaic" not in alone  # the GeoTIFF was mapped, not classified whole
    with rasterio.open(run / "maps" / "mosaic.classes.tif") as source:
        cells = source.read(1)
        names = json.loads(source.tags()["class_names"])
        assert source.crs.to_epsg() == 32632 and source.nodata == 255
        assert source.transform == from_origin(500_000, 5_000_000, 640, 640)  # 10 m x the 64 px stride
        assert source.colormap(1)[0][:3] != source.colormap(1)[1][:3]
    assert cells.shape == (8, 8)
    assert [[names[c] for c in row] for row in cells] == [[alone[f"tile_{r}_{c}"] for c in range(8)] for r in range(8)]
    with Image.open(run / "maps" / "mosaic.preview.png") as preview:
        assert preview.format == "PNG" and preview.width > preview.height > 300
    assert (read_band(run / "maps" / "T32TMT_20240601T103031_TCI_10m.classes.tif") == cells).all()


def test_windows_step_by_the_stride_and_the_last_is_aligned_to_the_edge() -> None:
    from eurosat_finetune.data.scenes.windows import window_origin, windows_along

    assert [window_origin(i, 32, 32, 100) for i in range(windows_along(100, 32, 32))] == [0, 32, 64, 68]
    assert [window_origin(i, 16, 32, 96) for i in range(windows_along(96, 16, 32))] == [0, 16, 32, 48, 64]
    assert windows_along(32, 16, 32) == 1


def test_overlapping_windows_average_into_each_cell(checkpoint: Path, tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (3, 96, 128), dtype=np.uint8)
    (tmp_path / "scenes").mkdir()
    write_raster(tmp_path / "scenes" / "s.tif", pixels)
    overlapping = ["--data.maps.stride=16", "--maps.probabilities=true"]
    run = predict(checkpoint, tmp_path / "scenes", tmp_path / "logs", *overlapping)
    with rasterio.open(run / "maps" / "s.probabilities.tif") as source:
        probs = source.read()
        assert source.transform == from_origin(500_000, 5_000_000, 160, 160)
        assert list(source.descriptions) == json.loads(read_tags(run)["class_names"])
    model = ImageClassifier.load_from_checkpoint(checkpoint).eval()  # windows of 32 px (the training size)
    windows = torch.from_numpy(pixels).unfold(1, 32, 16).unfold(2, 32, 16).permute(1, 2, 0, 3, 4)  # 5 x 7 windows
    with torch.no_grad():
        window_probs = model(windows.reshape(-1, 3, 32, 32)).softmax(-1).reshape(5, 7, -1).numpy()
    assert probs.shape == (10, 6, 8)  # each window covers 2 x 2 cells of 16 px
    for r, c in [(0, 0), (0, 7), (3, 4), (5, 7)]:
        covering = [window_probs[i, j] for i in (r - 1, r) for j in (c - 1, c) if 0 <= i < 5 and 0 <= j < 7]
        assert probs[:, r, c] == pytest.approx(np.mean(covering, axis=0), abs=1e-5)
    assert (read_band(run / "maps" / "s.classes.tif") == probs.argmax(0)).all()


@pytest.mark.slow  # an end-to-end run: the full suite (the quick one keeps overlapping windows and patches)
def test_mapping_progress_counts_windows(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Lightning's bar off (or output not a terminal), the windows mapped are counted in log lines."""
    monkeypatch.setenv("TQDM_DELAY", "0")  # a scene this small is mapped within the usual 2 s
    (tmp_path / "scenes").mkdir()
    write_raster(tmp_path / "scenes" / "s.tif", np.zeros((3, 96, 128), np.uint8))
    capsys.readouterr()
    predict(checkpoint, tmp_path / "scenes", tmp_path / "logs", "--data.maps.stride=16")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("INFO: Mapping")]
    assert lines[0].startswith("INFO: Mapping 1 scene: 0% (0 of 35 windows, ")
    assert lines[-1].startswith("INFO: Mapping 1 scene: 100% (35 of 35 windows, ") and len(lines) <= 3


def read_tags(run: Path) -> dict[str, str]:
    with rasterio.open(next((run / "maps").glob("*.classes.tif"))) as source:
        return source.tags()


@pytest.mark.slow  # an end-to-end run: the full suite
def test_16_bit_reflectance_band_order_and_one_band(checkpoint: Path, tmp_path: Path) -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (3, 64, 96), dtype=np.uint8)
    (tmp_path / "a").mkdir()
    write_raster(tmp_path / "a" / "rgb.tif", rgb)
    reference = read_band(predict(checkpoint, tmp_path / "a", tmp_path / "la") / "maps" / "rgb.classes.tif")

    # 16-bit reflectance (0..3000 is the 8-bit range), bands stored as Sentinel-2 orders them: B2, B3, B4, B8
    reflectance = np.round(rgb.astype(np.float64) * 3000 / 255).astype(np.uint16)
    stacked = np.stack([reflectance[2], reflectance[1], reflectance[0], reflectance[0] // 2])
    (tmp_path / "b").mkdir()
    write_raster(tmp_path / "b" / "s2.tif", stacked)
    run = predict(checkpoint, tmp_path / "b", tmp_path / "lb", "--data.maps.raster_bands=[3, 2, 1]")
    assert (read_band(run / "maps" / "s2.classes.tif") == reference).all()

    (tmp_path / "c").mkdir()
    write_raster(tmp_path / "c" / "grey.tif", rgb[:1])
    assert read_band(predict(checkpoint, tmp_path / "c", tmp_path / "lc") / "maps" / "grey.classes.tif").shape == (2, 3)


def test_nodata_windows_map_to_nodata_and_the_map_s_legend_names_its_classes(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The map's legend is where GDAL (``<map>.aux.xml``) and QGIS (``<name>.classes.qml``) read it: each class's
    name in the map's colour table's colour (``tests/test_map_legend.py`` for the legend on its own)."""
    pixels = np.random.default_rng(3).integers(1, 256, (3, 64, 96), dtype=np.uint8)
    pixels[:, :32, :32] = 0  # the top-left window holds only nodata
    (tmp_path / "s").mkdir()
    write_raster(tmp_path / "s" / "edge.tif", pixels, nodata=0)
    capsys.readouterr()
    maps = predict(checkpoint, tmp_path / "s", tmp_path / "logs") / "maps"
    cells = read_band(maps / "edge.classes.tif")
    assert cells[0, 0] == 255 and (cells.ravel()[1:] < 10).all()
    assert check_legend(maps / "edge.classes.tif") == list(EUROSAT_CLASSES)
    assert sorted(p.name for p in maps.iterdir()) == [
        f"edge.{end}" for end in ("classes.qml", "classes.tif", "classes.tif.aux.xml", "json", "preview.png")
    ]
    said = capsys.readouterr().out
    assert f"written to {maps}: each <name>.classes.tif with its legend for GDAL (<name>.classes.tif.aux.xml)" in said


@pytest.mark.slow  # an end-to-end run: the full suite
def test_a_checkpoint_written_before_the_one_path_maps_in_windows_of_its_image_size(tmp_path: Path) -> None:
    """The checkpoint of commit b96ce77 (its datamodule state: image size 32, no ground resolution)
    maps a scene in 32 px windows, each cell the class of its window alone."""
    checkpoint = REPO / "tests" / "data" / "image-classifier-b96ce77.ckpt"
    pixels = np.random.default_rng(8).integers(0, 256, (3, 64, 96), dtype=np.uint8)
    (tmp_path / "s").mkdir()
    write_raster(tmp_path / "s" / "s.tif", pixels)
    cells = read_band(predict(checkpoint, tmp_path / "s", tmp_path / "logs") / "maps" / "s.classes.tif")
    model = ImageClassifier.load_from_checkpoint(checkpoint).eval()
    windows = torch.from_numpy(pixels).unfold(1, 32, 32).unfold(2, 32, 32).permute(1, 2, 0, 3, 4)  # 2 x 3 windows
    with torch.no_grad():
        expected = model(windows.reshape(-1, 3, 32, 32)).argmax(-1).reshape(2, 3).numpy()
    np.testing.assert_array_equal(cells, expected)


@pytest.mark.slow  # an end-to-end run: the full suite
def test_bad_scenes_are_refused_or_listed(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    def refused(folder: Path, *options: str) -> str:
        args = ["predict", *FAST, f"--ckpt_path={checkpoint}", f"--data.predict_root={folder}", *options]
        return cli_error([*args, f"--trainer.default_root_dir={tmp_path}/runs"], capsys).strip().splitlines()[-1]

    small = tmp_path / "small"
    small.mkdir()
    write_raster(small / "small.tif", np.zeros((3, 20, 40), np.uint8))
    assert refused(small) == (
        f"eurosat: error: {small / 'small.tif'} is 40x20 px, smaller than one 32 px window; lower data.maps.window "
        "or set data.maps.scenes=none to classify it whole"
    )
    two = tmp_path / "two"
    two.mkdir()
    write_raster(two / "two.tif", np.zeros((2, 64, 64), np.uint8))
    assert refused(two) == (
        f"eurosat: error: {two / 'two.tif'} has 2 band(s), none described as a Sentinel-2 band: give its red, green "
        "and blue bands' numbers (from 1) with data.maps.raster_bands, e.g. --data.maps.raster_bands [4,3,2], or name "
        "all 2 in file order"
    )
    assert refused(two, "--data.maps.raster_bands=[B02,B03,B04,B08]") == (  # names of another count: not passed over
        f"eurosat: error: data.maps.raster_bands names 4 band(s) but {two / 'two.tif'} has 2: name every band of the "
        "file, in file order"
    )
    assert refused(two, "--data.maps.raster_bands=[1, 2, 3]").startswith(
        f"eurosat: error: {two / 'two.tif'} has 2 band(s); data.maps.raster_bands=[1, 2, 3] asks for band 3"
    )
    assert refused(small, "--data.maps.stride=5") == (
        "eurosat: error: data.maps.stride=5 must divide data.maps.window=32 (each map cell is one stride step)"
    )
    assert refused(small, "--data.maps.raster_bands=[1, 2]").startswith(  # refused by its type, when parsed
        'eurosat: error: Parser key "data.maps.raster_bands": Does not validate against any of the Union subtypes'
    )

    mixed = tmp_path / "mixed"  # a corrupt TIFF and a text file named .tif are unreadable images, listed
    mixed.mkdir()
    write_raster(mixed / "good.tif", np.zeros((3, 64, 64), np.uint8))
    (mixed / "corrupt.tif").write_bytes((mixed / "good.tif").read_bytes()[:300])
    (mixed / "notes.tif").write_text("not a raster")
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable images, nothing classified: .*corrupt\.tif"):
        run = predict(checkpoint, mixed, tmp_path / "logs")
    assert not (run / "predictions.csv").exists()  # only a scene mapped: no CSV of a header alone
    assert sorted(p.name for p in (run / "maps").iterdir()) == [
        f"good.{end}" for end in ("classes.qml", "classes.tif", "classes.tif.aux.xml", "json", "preview.png")
    ]
    maps = f"--maps.dirpath={run / 'maps'}"  # an existing map is never overwritten: refused before any work
    assert refused(mixed, maps) == (
        f"eurosat: error: {run / 'maps'} already holds files; choose another --maps.dirpath or move them"
    )


@pytest.mark.slow  # an end-to-end run: the full suite
def test_which_files_are_scenes(checkpoint: Path, tmp_path: Path) -> None:
    pixels = np.random.default_rng(5).integers(0, 256, (3, 96, 96), dtype=np.uint8)
    root = tmp_path / "mixed"
    root.mkdir()
    write_raster(root / "geo.tif", pixels)
    write_raster(root / "plain.tif", pixels, crs=None)  # a TIFF without a CRS
    Image.fromarray(pixels.transpose(1, 2, 0)).save(root / "photo.png")
    Image.fromarray(pixels[:, :32, :32].transpose(1, 2, 0)).save(root / "tile.png")  # one window: never a scene
    for mode, mapped in (("auto", ["geo"]), ("all", ["geo", "photo", "plain"]), ("none", [])):
        run = predict(checkpoint, root, tmp_path / mode, f"--data.maps.scenes={mode}")
        with open(run / "predictions.csv") as f:
            whole = sorted(Path(row["path"]).stem for row in csv.DictReader(f))
        assert whole == sorted({"geo", "photo", "plain", "tile"} - set(mapped)), mode
        assert sorted(p.name.split(".")[0] for p in (run / "maps").glob("*.classes.tif")) == mapped, mode


@pytest.mark.slow  # an end-to-end run: the full suite
def test_georeferenced_jpeg2000_and_vrt_files_are_scenes(checkpoint: Path, tmp_path: Path) -> None:
    """A georeferenced JPEG 2000 (as Sentinel-2's ..._TCI_10m.jp2, taken out of its product) and a .vrt
    stack are mapped as the GeoTIFF they hold is; files rasterio cannot read as rasters (XML) are left alone."""
    pixels = np.random.default_rng(6).integers(0, 256, (3, 64, 96), dtype=np.uint8)
    (tmp_path / "tif").mkdir()
    geotiff = write_raster(tmp_path / "tif" / "scene.tif", pixels)
    reference = read_band(predict(checkpoint, tmp_path / "tif", tmp_path / "l-tif") / "maps" / "scene.classes.tif")
    product = tmp_path / "bands"  # not a .SAFE: a product is one scene (tests/test_products.py)
    product.mkdir()
    copy(geotiff, product / "T32TMT_TCI_10m.jp2", driver="JP2OpenJPEG", REVERSIBLE="YES", QUALITY=100)
    copy(geotiff, product / "stack.vrt", driver="VRT")  # refers to the GeoTIFF outside the folder
    (product / "notes.xml").write_text("<metadata/>")
    run = predict(checkpoint, product, tmp_path / "l-product")
    assert sorted(p.name for p in (run / "maps").glob("*.classes.tif")) == [
        "T32TMT_TCI_10m.classes.tif",
        "stack.classes.tif",
    ]
    for name in ("T32TMT_TCI_10m", "stack"):
        with rasterio.open(run / "maps" / f"{name}.classes.tif") as source:
            assert (source.read(1) == reference).all() and source.transform == from_origin(500_000, 5_000_000, 320, 320)
    assert not (run / "predictions.csv").exists()  # nothing classified whole: no CSV of a header alone


@pytest.mark.slow  # an end-to-end run: the full suite
@pytest.mark.parametrize("stride", [32, 16])
def test_maps_cover_the_whole_scene(stride: int, checkpoint: Path, tmp_path: Path) -> None:
    """A scene whose sides are no multiples of the 32 px window: the last window of each row and column
    is aligned to the edge, so every cell is mapped; the cells keep the stride's size from the origin."""
    pixels = np.random.default_rng(7).integers(0, 256, (3, 70, 100), dtype=np.uint8)
    (tmp_path / "s").mkdir()
    write_raster(tmp_path / "s" / "odd.tif", pixels)
    run = predict(
        checkpoint, tmp_path / "s", tmp_path / "logs", f"--data.maps.stride={stride}", "--maps.probabilities=true"
    )
    with rasterio.open(run / "maps" / "odd.probabilities.tif") as source:
        probs = source.read()
        assert source.transform == from_origin(500_000, 5_000_000, 10 * stride, 10 * stride)
    assert probs.shape[1:] == (-(-70 // stride), -(-100 // stride)) and not np.isnan(probs).any()
    assert (read_band(run / "maps" / "odd.classes.tif") != 255).all()
    model = ImageClassifier.load_from_checkpoint(checkpoint).eval()
    with torch.no_grad():  # the bottom-right cell: covered by the window aligned to both edges alone
        corner = model(torch.from_numpy(pixels[:, 38:70, 68:100].copy())[None]).softmax(-1)[0].numpy()
    assert probs[:, -1, -1] == pytest.approx(corner, abs=1e-5)


def test_georeferenced_patches_of_one_window_are_classified(
    checkpoint: Path, sample_root: Path, tmp_path: Path
) -> None:
    """GeoTIFF patches the size of one window (as EuroSAT MS ships them, or as cut from scenes) are
    images: one row each in predictions.csv, no one-cell maps."""
    patches = tmp_path / "patches"
    patches.mkdir()
    tiles = sorted((sample_root / "EuroSAT_RGB" / "River").glob("*.jpg"))[:3]
    for tile in tiles:
        write_raster(patches / f"{tile.stem}.tif", np.asarray(Image.open(tile)).transpose(2, 0, 1).copy())
    run = predict(checkpoint, patches, tmp_path / "logs")
    with open(run / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [Path(row["path"]).stem for row in rows] == [tile.stem for tile in tiles]
    assert not (run / "maps").exists()
    model = ImageClassifier.load_from_checkpoint(checkpoint).eval()
    with torch.no_grad():
        probs = model(torch.from_numpy(np.asarray(Image.open(tiles[0])).transpose(2, 0, 1).copy())[None]).softmax(-1)
    assert float(rows[0][rows[0]["predicted_class"]]) == pytest.approx(float(probs.max()), abs=1e-5)


@pytest.mark.slow  # an end-to-end run: the full suite
def test_predict_reads_only_the_checkpoint_and_predict_root(
    checkpoint: Path, sample_root: Path, tmp_path: Path
) -> None:
    """A fit config's ``download: true`` (and a url nobody answers) does not make predict fetch, list or
    decode the labelled data: the checkpoint knows the classes, bands and image size."""
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/EuroSAT_RGB.zip"
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    write_raster(scenes / "scene.tif", np.full((3, 64, 64), 90, np.uint8))
    empty = tmp_path / "empty"
    run = predict(checkpoint, scenes, tmp_path / "logs", f"--data.root={empty}", "--data.download.enabled=true",
                  f"--data.download.url={closed}")  # fmt: skip
    assert (run / "maps" / "scene.classes.tif").is_file()
    assert not empty.exists()  # nothing downloaded or written there
    data = tmp_path / "data"  # labelled data at hand: not decoded either (no cache beside it)
    shutil.copytree(sample_root, data, ignore=shutil.ignore_patterns(".*"))
    run = predict(checkpoint, scenes, tmp_path / "logs2", f"--data.root={data}")
    assert (run / "maps" / "scene.classes.tif").is_file()
    assert not [p for p in data.rglob(".*") if p.is_file()]


@pytest.mark.slow  # three CLI runs
def test_predict_without_a_checkpoint_takes_an_exported_classifiers_labels_or_asks_for_one(
    checkpoint: Path, sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Predicting new images with the run's Hugging Face export as the model (no checkpoint, no data.root)
    labels them with the export's own classes, as the checkpoint does; a model with no labels at all is
    one line saying where they come from."""
    images = tmp_path / "images"
    shutil.copytree(sample_root / "EuroSAT_RGB" / "River", images)
    nowhere = [f"--data.root={tmp_path / 'none'}", f"--data.predict_root={images}"]
    export = checkpoint.parent.parent / "huggingface"
    rows = {}
    for name, model in (
        ("checkpoint", [f"--ckpt_path={checkpoint}"]),
        ("export", [f"--model.network.pretrained={export}"]),
    ):
        run_cli(["predict", *FAST, *model, *nowhere, f"--predictions.output={tmp_path / name}.csv",
                 f"--trainer.default_root_dir={tmp_path / name}"])  # fmt: skip
        with open(tmp_path / f"{name}.csv") as f:
            rows[name] = [(row["path"], row["predicted_class"]) for row in csv.DictReader(f)]
    assert len(rows["export"]) == 20 and rows["export"] == rows["checkpoint"]
    message = cli_error(["predict", *FAST, *TINY_MODEL, *nowhere, f"--trainer.default_root_dir={tmp_path}"], capsys)
    assert message == (
        "eurosat: error: model.class_names is empty: give --ckpt_path (a checkpoint of `eurosat fit` knows its "
        "classes), model.class_names, or a data.root whose class folders name them\n"
    )


def test_an_area_maps_part_of_a_raster_and_leaves_out_those_it_does_not_reach(
    checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``data.maps.area`` (degrees): the windows cover it on the raster's grid, no more; a raster elsewhere is
    left out and named."""
    from rasterio.warp import transform_bounds

    pixels = np.random.default_rng(5).integers(1, 256, (3, 128, 128), dtype=np.uint8)
    (tmp_path / "s").mkdir()
    write_raster(tmp_path / "s" / "a.tif", pixels)
    far = rasterio.Affine(ORIGIN.a, 0, ORIGIN.c + 100_000, 0, ORIGIN.e, ORIGIN.f)  # 100 km east
    with rasterio.open(tmp_path / "s" / "a.tif") as source:
        profile = source.profile | {"transform": far}
        inner = rasterio.windows.bounds(rasterio.windows.Window(40, 40, 48, 48), source.transform)
        whole = source.bounds
    with rasterio.open(tmp_path / "s" / "far.tif", "w", **profile) as dst:
        dst.write(pixels)
    area = transform_bounds("EPSG:32632", "EPSG:4326", *inner)
    with caplog.at_level(logging.WARNING, logger="eurosat_finetune"):
        run = predict(checkpoint, tmp_path / "s", tmp_path / "logs", f"--data.maps.area=[{','.join(map(str, area))}]")
    assert sorted(p.name for p in (run / "maps").glob("*.tif")) == ["a.classes.tif"]
    with rasterio.open(run / "maps" / "a.classes.tif") as source:
        left, bottom, right, top = source.bounds
        tags = source.tags()
    assert whole.left < left <= inner[0] and whole.bottom < bottom <= inner[1]  # the area's pixels on a's grid
    assert inner[2] <= right < whole.right and inner[3] <= top < whole.top
    (said,) = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert said.startswith(f"data.maps.area: 1 scene(s) left out: {tmp_path / 's' / 'far.tif'} does not reach the area")
    assert tags["source"] == str(tmp_path / "s" / "a.tif")


def test_predict_root_may_be_one_file_and_a_missing_one_is_named(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A scene file given as ``data.predict_root``, as users give one scene, is mapped; one image is classified;
    a path that does not exist, and a file that is neither, are one line each saying so."""
    pixels = np.random.default_rng(6).integers(1, 256, (3, 96, 96), dtype=np.uint8)
    (tmp_path / "mosaic").mkdir()
    scene = write_raster(tmp_path / "mosaic" / "mosaic.tif", pixels)
    run = predict(checkpoint, scene, tmp_path / "one-scene")
    assert sorted(p.name for p in (run / "maps").glob("*.tif")) == ["mosaic.classes.tif"]
    image = tmp_path / "photo.png"
    Image.fromarray(pixels[:, :32, :32].transpose(1, 2, 0)).save(image)
    run = predict(checkpoint, image, tmp_path / "one-image")
    with (run / "predictions.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 1 and rows[0]["path"].endswith("photo.png")
    for root, says in (
        (tmp_path / "scenes", "does not exist; give a folder, a file or a URL"),
        (tmp_path / "notes.txt", "is not an image (.jpeg, "),
    ):
        if root.suffix:
            root.write_text("not an image")
        error = cli_error(["predict", *FAST, f"--ckpt_path={checkpoint}", f"--data.predict_root={root}",
                           f"--trainer.default_root_dir={tmp_path / 'runs'}"], capsys)  # fmt: skip
        assert error.strip().splitlines()[-1].startswith(f"eurosat: error: data.predict_root='{root}' "), error
        assert says in error


def test_a_run_that_classifies_nothing_fails_naming_what_the_model_takes(
    checkpoint: Path, ms_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """An RGB model on 13-band EuroSAT MS patches: it can take none of them, so the command fails in one line
    saying what they have and what the model takes (no line of libtiff's per file: the band count is read from
    each header first), and writes no predictions file of a header alone."""
    runs = tmp_path / "runs"
    error = cli_error(["predict", *FAST, f"--ckpt_path={checkpoint}", f"--data.predict_root={ms_root}",
                       "--data.maps.scenes=none", f"--trainer.default_root_dir={runs}"], capfd)  # fmt: skip
    last = error.strip().splitlines()[-1]
    count = len(list(ms_root.rglob("*.tif")))
    assert last.startswith(
        f"eurosat: error: no image under data.predict_root could be classified: {count} of {count} have 13 bands; "
        "the model takes RGB images (3 bands), e.g. "
    ), error
    assert "More samples per pixel" not in error and "unreadable" not in error
    assert not list(runs.rglob("predictions.csv"))
