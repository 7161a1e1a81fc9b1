"""Sentinel-2 products (written here in ESA's layout, JPEG 2000 bands) and plain rasters mapped right."""

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml
from conftest import FAST, REPO, TINY_VIT, cli_error, run_cli, version_dir
from fakes.sentinel2 import native_bands, sample_product_bands, write_product
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from eurosat_finetune.data.bands import EUROSAT_MS_BANDS, NATIVE_RESOLUTION
from eurosat_finetune.data.scenes.sentinel2_products import read_product
from eurosat_finetune.errors import UnreadableImageError
from eurosat_finetune.model import ImageClassifier

TINY_MODEL = ["--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]
NO_B10 = [band for band in EUROSAT_MS_BANDS if band != "B10"]
ORIGIN = (499980.0, 5400000.0)  # the products' upper-left corner (UTM 32N)
SIZE = 192  # px at 10 m: 12 x 12 windows of the 16 px the multispectral sample was trained at


def fit(root: Path, where: Path, *options: str) -> Path:
    run_cli(["fit", *FAST, *TINY_MODEL, f"--data.root={root}", "--trainer.max_epochs=1", "--export.after_fit=false",
             "--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={where}", *options])  # fmt: skip
    return version_dir(where, 0) / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def ms12(ms_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ViT trained on 12 bands of the multispectral sample (no B10, as L2A products have)."""
    return fit(ms_root, tmp_path_factory.mktemp("ms12"), f"--data.bands=[{','.join(NO_B10)}]")


@pytest.fixture(scope="module")
def rgb(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit(sample_root, tmp_path_factory.mktemp("rgb"))


def predict(checkpoint: Path, root: Path, logs: Path, *options: str) -> Path:
    run_cli(["predict", *FAST, f"--ckpt_path={checkpoint}", f"--data.predict_root={root}", "--trainer.logger=CSVLogger",
             f"--trainer.logger.save_dir={logs}", *options])  # fmt: skip
    return version_dir(logs, 0) / "maps"


def classes_and_tags(path: Path) -> tuple[np.ndarray, dict[str, str]]:
    with rasterio.open(path) as source:
        return source.read(1), source.tags()


def finest(level: str, band: str, native: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
    """What the product's finest file of ``band`` holds, and its resolution: L2A has B01 at 20 m too."""
    if level == "L2A" and band == "B01":
        return np.repeat(np.repeat(native[band], 3, axis=0), 3, axis=1), 20
    return native[band], NATIVE_RESOLUTION[band]


def stacked_reference(
    folder: Path, level: str, native: dict[str, np.ndarray], offset: int, bands: list[str], quantification: int
) -> Path:
    """The product's pixels as one described 10 m GeoTIFF in EuroSAT MS's units (reflectance x 10,000, no
    offset): each band's finest file enlarged onto the 10 m grid whole, by GDAL's cubic spline resampling
    read (rasterio); DN 0 is no data, and so is every pixel whose kernel reaches it (NaN in, NaN out)."""
    stack = []
    for band in bands:
        pixels, _ = finest(level, band, native)
        profile = {"driver": "MEM", "width": pixels.shape[1], "height": pixels.shape[0], "count": 1, "dtype": "float32"}
        with MemoryFile() as memory, memory.open(**profile, nodata=np.nan) as source:
            source.write(np.where(pixels > 0, pixels, np.nan).astype(np.float32)[None])
            out = source.read(1, out_shape=(SIZE, SIZE), resampling=Resampling.cubic_spline)
        reflectance = np.clip(np.rint((np.nan_to_num(out) - offset) * 10_000 / quantification), 1, 65535)
        stack.append(np.where(np.isnan(out), 0, reflectance).astype(np.uint16))
    folder.mkdir(parents=True)
    path = folder / "stack.tif"
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=len(bands), dtype="uint16", nodata=0,
                       crs="EPSG:32632", transform=from_origin(*ORIGIN, 10, 10)) as dst:  # fmt: skip
        dst.write(np.stack(stack))
        for i, band in enumerate(bands, start=1):
            dst.set_band_description(i, band)
    return path


@pytest.mark.parametrize(
    ("level", "baseline", "as_zip", "quantification"),
    [
        pytest.param("L1C", "02.07", False, 10_000, marks=pytest.mark.slow),
        pytest.param("L1C", "05.09", True, 10_000, marks=pytest.mark.slow),
        ("L2A", "05.09", False, 5_000),  # the quick suite's: an offset, and a quantification other than 10,000
        pytest.param("L2A", "02.07", True, 10_000, marks=pytest.mark.slow),
    ],
)
def test_a_product_maps_as_its_pixels_stacked_on_the_10_m_grid(
    level: str, baseline: str, as_zip: bool, quantification: int, ms12: Path, tmp_path: Path
) -> None:
    offset = 1000 if baseline >= "04.00" else 0  # DN = reflectance x quantification + 1000 since baseline 04.00
    stack = sample_product_bands(SIZE, SIZE, seed=1, offset=offset)  # at a quantification of 10,000
    for band, pixels in stack.items():
        stack[band] = ((pixels.astype(np.int64) - offset) * quantification // 10_000 + offset).astype(np.uint16)
        stack[band][:48, :48] = 0  # outside the swath: no data
    native = native_bands(stack)
    product = write_product(tmp_path / "in", native, level, baseline, as_zip=as_zip, origin=ORIGIN, blocksize=64,
                            quantification=quantification)  # fmt: skip
    stacked_reference(tmp_path / "stack", level, native, offset, NO_B10, quantification)

    maps = predict(ms12, product, tmp_path / "l-product")
    name = product.name.split(".")[0]
    ends = ("classes.qml", "classes.tif", "classes.tif.aux.xml", "json", "preview.png")  # the legend beside the map
    assert sorted(p.name for p in maps.iterdir()) == [f"{name}.{end}" for end in ends]
    cells, tags = classes_and_tags(maps / f"{name}.classes.tif")
    reference, _ = classes_and_tags(predict(ms12, tmp_path / "stack", tmp_path / "l-stack") / "stack.classes.tif")
    np.testing.assert_array_equal(cells, reference)
    # no data: the windows in the DN 0 corner, and next to it those the 60 m bands' kernel (12 px) took
    assert (cells[:3, :3] == 255).all() and (cells[4:] < 3).all() and (cells[:, 4:] < 3).all()
    assert tags["product"] == name and tags["processing_level"] == level and tags["processing_baseline"] == baseline
    assert json.loads(tags["offsets_applied"]) == dict.fromkeys(NO_B10, -offset)
    assert float(tags["quantification_value"]) == quantification
    assert json.loads(tags["bands"]) == NO_B10
    with rasterio.open(maps / f"{name}.classes.tif") as source:
        assert source.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert source.transform == from_origin(*ORIGIN, 160, 160) and source.crs.to_epsg() == 32632


@pytest.mark.slow  # an end-to-end run: the full suite
def test_a_13_band_model_is_refused_on_l2a_and_maps_l1c(ms_root: Path, tmp_path: Path, capsys) -> None:
    ms13 = fit(ms_root, tmp_path / "ms13")
    native = native_bands(sample_product_bands(SIZE, SIZE, seed=2))
    l2a = write_product(tmp_path / "l2a", native, "L2A", blocksize=64)
    error = cli_error(["predict", *FAST, f"--ckpt_path={ms13}", f"--data.predict_root={l2a}",
                       f"--trainer.default_root_dir={tmp_path / 'runs'}"], capsys)  # fmt: skip
    assert error.strip().splitlines()[-1] == (
        f"eurosat: error: {l2a} (L2A) has no band B10, which the model was trained on; map it with a model trained "
        "without B10 (data.bands not naming them)"
    )
    assert not (tmp_path / "runs" / "lightning_logs" / "version_0" / "maps").exists()  # refused before any window
    l1c = write_product(tmp_path / "l1c", native, "L1C", blocksize=64)
    cells, tags = classes_and_tags(next(predict(ms13, l1c, tmp_path / "l-l1c").glob("*.classes.tif")))
    assert cells.shape == (12, 12) and (cells < 3).all() and json.loads(tags["bands"]) == list(EUROSAT_MS_BANDS)


@pytest.mark.slow  # two end-to-end runs: the full suite
def test_a_checkpoint_maps_a_product_in_its_own_bands_with_or_without_a_config(ms12: Path, tmp_path: Path) -> None:
    """A checkpoint's bands reach the scene reader one way, as ``data.bands`` from the command: predicting
    with configs/ms.yaml (``bands: all``, 13 with B10, which no L2A product has) reads the 12 bands the model
    was trained on, as with no config; the run's config.yaml says so."""
    product = write_product(tmp_path / "in", native_bands(sample_product_bands(SIZE, SIZE, seed=5)), "L2A",
                            blocksize=64)  # fmt: skip
    name = product.name.split(".")[0]
    plain = classes_and_tags(predict(ms12, product, tmp_path / "plain") / f"{name}.classes.tif")
    config = ["--config", str(REPO / "configs" / "ms.yaml"), f"--trainer.logger.init_args.save_dir={tmp_path}"]
    run_cli(["predict", *config, *FAST, f"--ckpt_path={ms12}", f"--data.predict_root={product}"])
    run = tmp_path / "ms" / "version_0"  # the config's TensorBoard logger, named ms
    cells, tags = classes_and_tags(run / "maps" / f"{name}.classes.tif")
    np.testing.assert_array_equal(cells, plain[0])
    assert tags == plain[1] and json.loads(tags["bands"]) == NO_B10
    with open(run / "config.yaml") as f:
        assert yaml.safe_load(f)["data"]["bands"] == NO_B10


@pytest.mark.slow  # an end-to-end run: the full suite
def test_predict_from_python_reads_the_bands_of_the_checkpoint_it_runs(ms12: Path, tmp_path: Path) -> None:
    """Without the command, which gives the checkpoint's bands as ``data.bands``, ``Trainer.predict`` with a
    checkpoint reads the bands of the model it runs: the same classes as ``eurosat predict`` maps."""
    from lightning.pytorch import Trainer

    from eurosat_finetune.data.datamodule import EuroSATDataModule
    from eurosat_finetune.data.loaders import LoaderOptions

    product = write_product(tmp_path / "in", native_bands(sample_product_bands(SIZE, SIZE, seed=5)), "L2A",
                            blocksize=64)  # fmt: skip
    data = EuroSATDataModule(predict_root=product, loader=LoaderOptions(batch_size=64, num_workers=0))
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    batches = trainer.predict(ImageClassifier.load_from_checkpoint(ms12), datamodule=data, ckpt_path=ms12)
    classes = {
        (int(r), int(c)): int(p.argmax())
        for b in batches
        for r, c, p in zip(b["row"], b["col"], b["probs"], strict=True)
    }
    mapped = classes_and_tags(next(predict(ms12, product, tmp_path / "cli").glob("*.classes.tif")))[0]
    assert classes == {(r, c): int(mapped[r, c]) for r, c in classes}


@pytest.mark.slow  # an end-to-end run: the full suite
def test_clouds_of_the_scene_classification_are_masked_on_request(ms12: Path, tmp_path: Path, capsys) -> None:
    native = native_bands(sample_product_bands(SIZE, SIZE, seed=3))
    scl = np.full((SIZE // 2, SIZE // 2), 4, np.uint8)  # vegetation, at 20 m
    scl[:, 48:] = 9  # cloud, high probability: the right half of the scene
    product = write_product(tmp_path / "in", native, "L2A", scl=scl, blocksize=64)
    clear = classes_and_tags(next(predict(ms12, product, tmp_path / "a").glob("*.classes.tif")))[0]
    masked, tags = classes_and_tags(
        next(predict(ms12, product, tmp_path / "b", "--data.maps.mask_clouds=true").glob("*.tif"))
    )
    assert (clear < 3).all() and (masked[:, 6:] == 255).all() and (masked[:, :6] == clear[:, :6]).all()
    assert tags["cloud_masked"] == "true"
    l1c = write_product(tmp_path / "l1c", native, "L1C", blocksize=64)
    args = ["predict", *FAST, f"--ckpt_path={ms12}", f"--data.predict_root={l1c}", "--data.maps.mask_clouds=true"]
    error = cli_error([*args, f"--trainer.default_root_dir={tmp_path / 'runs'}"], capsys)
    assert error.strip().splitlines()[-1] == (
        f"eurosat: error: data.maps.mask_clouds needs the scene classification (SCL) of an L2A product; {l1c} is "
        "L1C without one: drop data.maps.mask_clouds"
    )


@pytest.mark.slow  # an end-to-end run: the full suite
def test_an_rgb_model_maps_a_product_as_one_scene_as_eurosat_rgb_was_made(rgb: Path, tmp_path: Path) -> None:
    """B04, B03, B02 as reflectance x 255 / 2,750: the same map as that 8-bit GeoTIFF."""
    stack = sample_product_bands(SIZE, SIZE, seed=4)
    product = write_product(tmp_path / "in", native_bands(stack), "L2A", as_zip=True, blocksize=64)
    shutil.copy(product, tmp_path / "in" / "copy.zip")  # the same product under another file name
    maps = predict(rgb, tmp_path / "in", tmp_path / "a")
    name = product.name.removesuffix(".zip")
    assert sorted(p.name for p in maps.glob("*.classes.tif")) == [f"{name}.classes.tif", "copy.classes.tif"]
    colour = np.stack([np.clip(np.rint((stack[b] - 1000) * 255 / 2750), 0, 255) for b in ("B04", "B03", "B02")])
    (tmp_path / "rgb").mkdir()
    with rasterio.open(tmp_path / "rgb" / "rgb.tif", "w", driver="GTiff", width=SIZE, height=SIZE, count=3,
                       dtype="uint8", crs="EPSG:32632", transform=from_origin(*ORIGIN, 10, 10)) as dst:  # fmt: skip
        dst.write(colour.astype(np.uint8))
    expected = classes_and_tags(predict(rgb, tmp_path / "rgb", tmp_path / "b") / "rgb.classes.tif")[0]
    np.testing.assert_array_equal(classes_and_tags(maps / f"{name}.classes.tif")[0], expected)


def write(path: Path, pixels: np.ndarray, resolution: float = 10, descriptions: list[str] | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    count, height, width = pixels.shape
    kw["transform"] = from_origin(*ORIGIN, resolution, resolution)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count, dtype=pixels.dtype,
                       crs="EPSG:32632", **kw) as dst:  # fmt: skip
        dst.write(pixels)
        for i, description in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, description)
    return path


@pytest.mark.slow  # an end-to-end run: the full suite
def test_plain_rasters_same_stems_nan_nodata_and_band_descriptions(rgb: Path, ms12: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    colour = rng.integers(1, 256, (3, 64, 96), dtype=np.uint8)
    scenes = tmp_path / "scenes"
    write(scenes / "a.tif", colour)
    write(scenes / "sub" / "a.tif", colour)
    shutil.copy(scenes / "a.tif", scenes / "a.TIFF")  # same stem, same folder: names keep the suffix
    reflectance = np.round(colour.astype(np.float64) * 2750 / 255).astype(np.uint16)
    write(scenes / "described.tif", np.stack([reflectance[2], reflectance[1], reflectance[0], reflectance[0]]),
          descriptions=["B02", "B03", "B04", "B08"])  # fmt: skip
    maps = predict(rgb, scenes, tmp_path / "a")
    names = sorted(p.relative_to(maps).as_posix() for p in maps.rglob("*.classes.tif"))
    assert names == ["a.TIFF.classes.tif", "a.tif.classes.tif", "described.classes.tif", "sub/a.classes.tif"]
    expected = classes_and_tags(maps / "sub" / "a.classes.tif")[0]
    np.testing.assert_array_equal(classes_and_tags(maps / "described.classes.tif")[0], expected)  # B04, B03, B02

    stack = sample_product_bands(SIZE, SIZE, seed=6, offset=0)
    integers = np.stack([stack[band] for band in NO_B10])
    floats = (integers / 10_000).astype(np.float32)  # reflectance 0..1
    floats[:, :40, :40] = np.nan
    (tmp_path / "ms").mkdir()
    write(tmp_path / "ms" / "int.tif", integers, descriptions=NO_B10)
    write(tmp_path / "ms" / "float.tif", floats, descriptions=NO_B10, nodata=np.nan)
    maps = predict(ms12, tmp_path / "ms", tmp_path / "b")
    whole, nan = (classes_and_tags(maps / f"{name}.classes.tif")[0] for name in ("int", "float"))
    assert (nan[:2, :2] == 255).all() and nan[2, 2] != 255  # less than half valid: no data
    keep = nan != 255
    keep[:3, :3] = False  # cells with some no-data pixels are classified from what is left: not comparable
    np.testing.assert_array_equal(nan[keep], whole[keep])


@pytest.mark.slow  # an end-to-end run: the full suite
def test_a_20_m_raster_is_mapped_on_the_10_m_grid_it_was_trained_at(ms12: Path, tmp_path: Path) -> None:
    stack = sample_product_bands(SIZE, SIZE, seed=7, offset=0)
    ten = np.stack([stack[band] for band in NO_B10])
    twenty = ten.reshape(len(NO_B10), SIZE // 2, 2, SIZE // 2, 2).mean(axis=(2, 4)).round().astype(np.uint16)
    write(tmp_path / "10" / "s.tif", ten, descriptions=NO_B10)
    write(tmp_path / "20" / "s.tif", twenty, resolution=20, descriptions=NO_B10)
    original = classes_and_tags(predict(ms12, tmp_path / "10", tmp_path / "a") / "s.classes.tif")[0]
    with rasterio.open(predict(ms12, tmp_path / "20", tmp_path / "b") / "s.classes.tif") as source:
        resampled, tags = source.read(1), source.tags()
        assert source.transform == from_origin(*ORIGIN, 160, 160)  # 16 px windows of 10 m pixels
    assert resampled.shape == original.shape and tags["resampled_from_resolution"] == "20.0"
    assert (resampled == original).mean() >= 0.8


@pytest.mark.slow  # an end-to-end run: the full suite (the quick one has the windows' origins, in test_maps.py)
def test_an_edge_window_fills_only_the_cells_no_other_window_covers(rgb: Path, tmp_path: Path) -> None:
    pixels = np.random.default_rng(8).integers(0, 256, (3, 64, 100), dtype=np.uint8)  # windows at x 0, 32, 64, 68
    write(tmp_path / "s" / "edge.tif", pixels)
    with rasterio.open(predict(rgb, tmp_path / "s", tmp_path / "l", "--maps.probabilities=true")
                       / "edge.probabilities.tif") as source:  # fmt: skip
        probs = source.read()
    model = ImageClassifier.load_from_checkpoint(rgb).eval()
    for x, cell in ((64, 2), (68, 3)):  # cell 2 is window 64's alone; cell 3 (96..127) is the edge window's
        with torch.no_grad():
            alone = model(torch.from_numpy(pixels[:, 32:64, x : x + 32].copy())[None]).softmax(-1)[0].numpy()
        assert probs[:, 1, cell] == pytest.approx(alone, abs=1e-5)


SPY = '''"""eurosat, with every block decode and every batch of windows logged (pid, worker) to $SPY_DIR."""
import json, os, sys
from torch.utils.data import get_worker_info
from eurosat_finetune.cli import main
from eurosat_finetune.data.scenes.raster_rows import RasterRows
from eurosat_finetune.data.scenes.windows import SceneWindows


def log(record):
    worker = get_worker_info()
    name = f"{os.getpid()}-{worker.id if worker else 'main'}.jsonl"
    with open(os.path.join(os.environ["SPY_DIR"], name), "a") as f:
        f.write(json.dumps(record) + "\\n")


def read_block(self, index, size, read=RasterRows.read_block):
    data, valid = read(self, index, size)
    log({"file": self.path, "rows": data.shape[1], "width": data.shape[2]})
    return data, valid


def batches(self, block, batches=SceneWindows.batches):
    for batch in batches(self, block):
        log({"windows": [[int(s), int(r), int(c)] for s, r, c in zip(batch["scene"], batch["row"], batch["col"])]})
        yield batch


RasterRows.read_block, SceneWindows.batches = read_block, batches
sys.exit(main())
'''


@pytest.mark.slow
def test_two_processes_with_two_workers_each_decode_a_product_about_once(ms12: Path, tmp_path: Path) -> None:
    """Under DDP (Lightning's spawner, 2 processes) with 2 DataLoader workers each, every window is read by
    exactly one process and worker, and the band files' pixels decoded in all add up to about one decode.
    (test_reliability.py's DDP test compares a map of overlapping windows with one process's.)"""
    import subprocess
    import sys
    from collections import Counter

    size = 2304  # 20 m files of 1152 rows in blocks of 256: 5 groups of 512 rows at 10 m for 4 readers
    product = write_product(tmp_path / "in", native_bands(sample_product_bands(size, size, seed=9)), "L2A",
                            blocksize=128)  # fmt: skip
    (tmp_path / "spy").mkdir()
    (tmp_path / "spy.py").write_text(SPY)
    command = [sys.executable, str(tmp_path / "spy.py"), "predict", f"--ckpt_path={ms12}",
               "--data.loader.num_workers=2",
               f"--data.predict_root={product}", "--trainer.accelerator=cpu", "--trainer.strategy=ddp",
               "--trainer.devices=2", "--data.loader.batch_size=256", "--trainer.enable_progress_bar=false",
               f"--trainer.default_root_dir={tmp_path}"]  # fmt: skip
    env = {**__import__("os").environ, "SPY_DIR": str(tmp_path / "spy")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    records = {
        log.stem: [json.loads(line) for line in log.read_text().splitlines()] for log in (tmp_path / "spy").iterdir()
    }
    readers = {name for name, lines in records.items() if any("windows" in line for line in lines)}
    assert len(readers) == 4 and not any(name.endswith("main") for name in readers)  # 2 processes x 2 workers
    windows = Counter(tuple(w) for lines in records.values() for line in lines for w in line.get("windows", []))
    assert len(windows) == 144 * 144 and set(windows.values()) == {1}  # every window once
    decoded, pixels = Counter(), {}
    for lines in records.values():
        for line in lines:
            if "file" in line:
                decoded[line["file"]] += line["rows"] * line["width"]
    for path in decoded:
        with rasterio.open(path) as source:
            pixels[path] = source.height * source.width
    assert len(decoded) == 12  # the 12 bands the model reads, each from its finest file
    assert all(decoded[path] >= pixels[path] for path in decoded)
    assert all(decoded[path] == pixels[path] for path in decoded if "_10m" in path)  # exactly once
    assert sum(decoded.values()) <= 1.3 * sum(pixels.values())  # 20 m files: one tile row more per reader boundary
    maps = next(tmp_path.glob("lightning_logs/version_*/maps"))
    assert (classes_and_tags(next(maps.glob("*.classes.tif")))[0] < 3).all()


@pytest.mark.slow  # an end-to-end run: the full suite
def test_alpha_bands_internal_masks_and_undescribed_13_band_stacks(
    rgb: Path, ms12: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    colour = np.random.default_rng(10).integers(1, 256, (3, 64, 96), dtype=np.uint8)
    alpha = np.full((1, 64, 96), 255, np.uint8)
    alpha[:, :, 64:] = 0  # the right third is transparent
    write(tmp_path / "s" / "rgba.tif", np.concatenate([colour, alpha]), photometric="RGB", alpha="YES")
    write(tmp_path / "s" / "masked.tif", colour)
    with rasterio.open(tmp_path / "s" / "masked.tif", "r+") as dst:
        dst.write_mask(np.where(alpha[0] > 0, 255, 0).astype(np.uint8))  # an internal (per-dataset) mask
    maps = predict(rgb, tmp_path / "s", tmp_path / "l")
    for name in ("rgba", "masked"):
        cells = classes_and_tags(maps / f"{name}.classes.tif")[0]
        assert (cells[:, 2] == 255).all() and (cells[:, :2] != 255).all(), name

    stack = sample_product_bands(SIZE, SIZE, seed=11, offset=0)
    write(tmp_path / "u" / "stack.tif", np.stack([stack[band] for band in EUROSAT_MS_BANDS]))  # no descriptions
    args = ["predict", *FAST, f"--ckpt_path={ms12}", f"--data.predict_root={tmp_path / 'u'}"]
    error = cli_error([*args, f"--trainer.default_root_dir={tmp_path / 'runs'}"], capsys).strip().splitlines()[-1]
    assert error.startswith(f"eurosat: error: {tmp_path / 'u' / 'stack.tif'} has 13 band(s) whose descriptions name no")
    # an RGB GeoTIFF for the 12-band model: what the file has and what the model reads, no 13-band list to give
    args = ["predict", *FAST, f"--ckpt_path={ms12}", f"--data.predict_root={tmp_path / 's' / 'masked.tif'}"]
    error = cli_error([*args, f"--trainer.default_root_dir={tmp_path / 'runs'}"], capsys).strip().splitlines()[-1]
    assert error == (
        f"eurosat: error: {tmp_path / 's' / 'masked.tif'} has 3 band(s); the model reads 12 band(s), "
        "B01, B02, B03, B04, B05, B06, B07, B08, B09, B11, B12, B8A: map scenes that hold all of them"
    )
    ordered = predict(
        ms12, tmp_path / "u", tmp_path / "named", f"--data.maps.raster_bands=[{','.join(EUROSAT_MS_BANDS)}]"
    )
    assert (classes_and_tags(ordered / "stack.classes.tif")[0] < 3).all()


def test_a_forked_dataloader_worker_opens_its_own_file_handles(tmp_path: Path) -> None:
    """A reader opened in the main process is forked into DataLoader workers: each must open its own GDAL
    handle, as one shared across a fork reads garbage or fails."""
    import multiprocessing
    import os

    from eurosat_finetune.data.scenes.raster_rows import RasterRows

    pixels = np.random.default_rng(12).integers(1, 60000, (1, 300, 200), dtype=np.uint16)
    rows = RasterRows(str(write(tmp_path / "band.tif", pixels)), (1,))
    rows.read(0, 10)  # the main process has opened it (as with data.num_workers=0 before a fork)

    def child(queue: multiprocessing.Queue) -> None:
        data, _ = rows.read(10, 290)
        queue.put((rows._opened_by == os.getpid(), bool((data == pixels[:, 10:290]).all())))

    queue = multiprocessing.get_context("fork").Queue()
    process = multiprocessing.get_context("fork").Process(target=child, args=(queue,), daemon=True)
    process.start()
    try:
        assert queue.get(timeout=60) == (True, True)
    finally:  # a child that hangs must not keep this process from ending
        process.join(timeout=60)
        if process.is_alive():
            process.kill()
            process.join()
    assert rows._opened_by == os.getpid()  # the main process keeps its own


def test_blocks_are_dealt_to_every_reader_of_a_raster_and_of_a_small_scene() -> None:
    """A raster's blocks (no coarser files) are cut anywhere; a product's only inside a 20 m tile row; a
    scene of fewer blocks than processes is split by window rows, so no process is left without windows."""
    from eurosat_finetune.data.scenes.windows import Block, dealt, split_for

    def windows(block: Block) -> int:
        return (block.last - block.first) * 10

    raster = [Block(0, 16 * i, 16 * (i + 1), group=i) for i in range(8)]
    assert [len(dealt(raster, windows, k, 4)) for k in range(4)] == [2, 2, 2, 2]
    product = [Block(0, 16 * i, 16 * (i + 1), group=i // 2) for i in range(8)]  # two blocks a 20 m tile row
    shares = [dealt(product, windows, k, 3) for k in range(3)]
    assert [block for share in shares for block in share] == product and all(shares)
    assert all(share[0].group == previous[-1].group for previous, share in itertools.pairwise(shares))
    small = split_for([Block(0, 0, 3)], 2)
    assert small == [Block(0, 0, 1), Block(0, 1, 3)] and all(dealt(small, windows, k, 2) for k in range(2))


@pytest.mark.slow  # an end-to-end run: the full suite
def test_damaged_products_are_one_line_and_stray_zips_are_named(
    ms12: Path, tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    native = native_bands(sample_product_bands(SIZE, SIZE, seed=13))
    product = write_product(tmp_path / "in", native, "L2A", blocksize=64)
    (product / "MTD_MSIL2A.xml").unlink()  # a partial download: its band files must not become scenes
    args = ["predict", *FAST, f"--ckpt_path={ms12}", f"--trainer.default_root_dir={tmp_path / 'runs'}"]
    error = cli_error([*args, f"--data.predict_root={tmp_path / 'in'}"], capsys).strip().splitlines()[-1]
    assert error == f"eurosat: error: {product} holds no MTD_MSIL1C.xml or MTD_MSIL2A.xml; download the product again"
    broken = tmp_path / "zips" / "S2B_MSIL1C_20240101T000000_N0510_R001_T32UMU_20240101T000000.zip"
    broken.parent.mkdir()
    broken.write_bytes(b"PK\x03\x04 half a download")
    error = cli_error([*args, f"--data.predict_root={broken.parent}"], capsys).strip().splitlines()[-1]
    assert error.startswith(f"eurosat: error: cannot read the Sentinel-2 product {broken} (")
    assert error.endswith("download it again")
    broken.unlink()
    (tmp_path / "zips" / "notes.zip").write_bytes(b"not a zip")
    stack = sample_product_bands(SIZE, SIZE, seed=14, offset=0)
    write(tmp_path / "zips" / "scene.tif", np.stack([stack[band] for band in NO_B10]), descriptions=NO_B10)
    with caplog.at_level("WARNING"):
        predict(ms12, tmp_path / "zips", tmp_path / "l")
    assert f"{tmp_path / 'zips' / 'notes.zip'} holds no Sentinel-2 product" in caplog.text


def test_reading_a_product_checks_its_band_files_against_the_manifest(tmp_path: Path) -> None:
    """The check itself, without a model: the full suite runs it through ``eurosat predict`` (below)."""
    product = write_product(tmp_path / "in", native_bands(sample_product_bands(SIZE, SIZE, seed=15)), "L2A")
    assert read_product(product).level == "L2A"  # intact: read
    band = next(product.glob("GRANULE/*/IMG_DATA/R20m/*_B05_20m.jp2"))
    size = band.stat().st_size
    with band.open("r+b") as f:
        f.truncate(size // 2)
    cut = rf" is {size // 2} bytes, but the product's manifest.safe says {size}; download the product again$"
    with pytest.raises(UnreadableImageError, match=cut):
        read_product(product)


@pytest.mark.slow  # an end-to-end run: the full suite
def test_a_band_file_cut_short_is_refused_by_the_products_manifest(ms12: Path, tmp_path: Path, capsys) -> None:
    """A truncated JPEG 2000 can decode to zeros without an error: its size is checked against manifest.safe."""
    product = write_product(
        tmp_path / "in", native_bands(sample_product_bands(SIZE, SIZE, seed=15)), "L2A", blocksize=64
    )
    band = next(product.glob("GRANULE/*/IMG_DATA/R20m/*_B05_20m.jp2"))
    size = band.stat().st_size
    with band.open("r+b") as f:
        f.truncate(size * 6 // 10)
    args = ["predict", *FAST, f"--ckpt_path={ms12}", f"--data.predict_root={product}"]
    error = cli_error([*args, f"--trainer.default_root_dir={tmp_path / 'runs'}"], capsys).strip().splitlines()[-1]
    entry = band.relative_to(product.parent).as_posix()
    assert error == (
        f"eurosat: error: {entry} in {product} is {size * 6 // 10} bytes, but the product's manifest.safe says "
        f"{size}; download the product again"
    )
