"""Multispectral EuroSAT (13-band uint16 GeoTIFFs, synthetic, in the published layouts): bands chosen by
name, the network following the bands, and every bad input refused in one line."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import FAST, TINY_VIT, cli_error, read_metrics, run_cli, version_dir, zip_dataset
from fakes.multispectral import link_published_layout, write_multispectral_sample
from PIL import Image
from test_backbones import FAMILIES, save_tiny

from eurosat_finetune.data.bands import EUROSAT_MS_BANDS, EUROSAT_MS_MEAN, EUROSAT_MS_STD
from eurosat_finetune.data.datamodule import EuroSATDataModule
from eurosat_finetune.data.loaders import LoaderOptions
from eurosat_finetune.data.patches.source import DownloadOptions
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.options import InputOptions, NetworkOptions

CLASSES = ["Forest", "River", "SeaLake"]
NO_WORKERS = LoaderOptions(num_workers=0)
TINY_MODEL = ["--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]
LEARN = [*FAST, *TINY_MODEL, "--model.optimizer.lr=0.001", "--trainer.max_epochs=20", "--export.after_fit=false"]


def all_bands() -> dict[str, list]:
    names = list(EUROSAT_MS_BANDS)
    return {"names": names, "mean": [EUROSAT_MS_MEAN[b] for b in names], "std": [EUROSAT_MS_STD[b] for b in names]}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_zero_initialised_new_channels_compute_what_the_rgb_network_did(family: str, tmp_path: Path) -> None:
    """With ``new_channels: zeros`` the 13-band network's output on a normalised input equals the
    pretrained RGB network's on that input's B04, B03 and B02 channels."""
    pretrained = str(save_tiny(family, tmp_path / family))
    rgb = ImageClassifier(CLASSES, NetworkOptions(pretrained=pretrained)).eval()
    ms = ImageClassifier(CLASSES, NetworkOptions(pretrained=pretrained), input_bands=all_bands()).eval()
    assert ms.net.config.num_channels == 13 and len(ms.image_mean) == 13
    # the new heads are drawn at random: give both the same one (every weight but the first layer's)
    rgb_state = rgb.net.state_dict()
    same = {key: value for key, value in ms.net.state_dict().items() if rgb_state[key].shape == value.shape}
    assert len(same) == len(rgb_state) - 1  # all but the first layer's weights
    ms.net.load_state_dict({**ms.net.state_dict(), **{key: rgb_state[key] for key in same}})
    pixels = torch.randn(4, 13, 32, 32)
    rgb_channels = [EUROSAT_MS_BANDS.index(band) for band in ("B04", "B03", "B02")]
    with torch.no_grad():
        torch.testing.assert_close(ms.classify(pixels), rgb.classify(pixels[:, rgb_channels]), rtol=1e-4, atol=1e-5)


def test_mean_initialised_new_channels_start_from_the_mean_rgb_filter(tmp_path: Path) -> None:
    pretrained = str(save_tiny("vit", tmp_path / "vit"))
    bands = {"names": ["B08", "B04", "B03", "B02"], "mean": [0.0] * 4, "std": [1.0] * 4}
    ms = ImageClassifier(CLASSES, NetworkOptions(pretrained=pretrained, new_channels="mean"), input_bands=bands)
    rgb = ImageClassifier(CLASSES, NetworkOptions(pretrained=pretrained))
    key = "vit.embeddings.patch_embeddings.projection.weight"
    stem, rgb_stem = ms.net.state_dict()[key], rgb.net.state_dict()[key]
    torch.testing.assert_close(stem[:, 1:], rgb_stem)  # B04, B03, B02: red, green, blue
    torch.testing.assert_close(stem[:, 0], rgb_stem.mean(dim=1))


def test_three_bands_in_another_order_get_their_own_filters(tmp_path: Path) -> None:
    """B02, B03, B04 (blue first) on an RGB network: the filters swap, though the channel count is the same."""
    pretrained = str(save_tiny("vit", tmp_path / "vit"))
    bands = {"names": ["B02", "B03", "B04"], "mean": [0.0] * 3, "std": [1.0] * 3}
    bgr = ImageClassifier(CLASSES, NetworkOptions(pretrained=pretrained), input_bands=bands)
    rgb = ImageClassifier(CLASSES, NetworkOptions(pretrained=pretrained))
    key = "vit.embeddings.patch_embeddings.projection.weight"
    torch.testing.assert_close(bgr.net.state_dict()[key], rgb.net.state_dict()[key].flip(1))


@pytest.fixture(scope="module")
def fitted(ms_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two fits on the same data: on B08, the band that tells the classes apart, and on RGB alone."""
    tmp = tmp_path_factory.mktemp("ms-fits")
    runs = {}
    for name, bands in (("signal", "[B08]"), ("rgb", "[B04,B03,B02]")):
        run_cli(["fit", *LEARN, f"--data.root={ms_root}", f"--data.bands={bands}", f"--trainer.default_root_dir={tmp}",
                 "--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp / name}"])  # fmt: skip
        runs[name] = version_dir(tmp / name, 0)
    return runs


@pytest.mark.slow  # two fits of 20 epochs
def test_the_band_that_tells_the_classes_apart_is_learnt_only_when_chosen(
    fitted: dict[str, Path], ms_root: Path
) -> None:
    signal, rgb = read_metrics(fitted["signal"])["val_acc"], read_metrics(fitted["rgb"])["val_acc"]
    assert signal == 1.0 and rgb < 0.7, (signal, rgb)  # 6 validation images, 3 classes
    saved = torch.load(fitted["signal"] / "checkpoints" / "best.ckpt", weights_only=True)
    data = EuroSATDataModule(root=ms_root, loader=NO_WORKERS, bands=["B08"])
    data.setup("fit")
    assert saved["hyper_parameters"]["input_bands"] == data.input_bands
    # a sample, not EuroSAT MS: the statistics of its training split's B08 (stored 8th), not the published ones
    assert data.input_bands["mean"] == pytest.approx(band_means(data.train_dataset.files, [8]), rel=1e-6)
    assert saved["hyper_parameters"]["network"]["architecture"]["num_channels"] == 1


@pytest.mark.slow  # the two fits of `fitted`
def test_a_checkpoint_predicts_new_patches_with_its_own_bands(
    fitted: dict[str, Path], ms_root: Path, tmp_path: Path
) -> None:
    """Predicting needs no labelled data: the checkpoint says which of the 13 stored bands it reads."""
    patches = tmp_path / "patches"
    for name in CLASSES:
        shutil.copytree(ms_root / "EuroSAT_MS" / name, patches / name)
    best = fitted["signal"] / "checkpoints" / "best.ckpt"
    args = [f"--data.root={tmp_path / 'none'}", f"--data.predict_root={patches}", "--data.maps.scenes=none"]
    run_cli(["predict", *FAST, f"--ckpt_path={best}", *args, f"--trainer.default_root_dir={tmp_path}"])
    with open(tmp_path / "lightning_logs" / "version_0" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60
    right = sum(Path(row["path"]).parent.name == row["predicted_class"] for row in rows)
    assert right >= 57  # trained on 42 of them: the classes are in B08


@pytest.mark.parametrize("layout", ["zenodo", "torchgeo"])
def test_both_published_zip_layouts_download_and_are_found(layout: str, tmp_path: Path, serve_dir) -> None:
    source = tmp_path / "source"
    write_multispectral_sample(source, layout, per_class=10, size=8)
    archive = zip_dataset(source, tmp_path / "served" / "EuroSAT_MS.zip")
    url = f"{serve_dir(archive.parent)}/EuroSAT_MS.zip"
    data = EuroSATDataModule(
        root=tmp_path / "data", download=DownloadOptions(True, url), loader=NO_WORKERS, bands=["B8A", "B02"]
    )
    assert data.class_names == CLASSES and data.multispectral and data.band_names == ["B8A", "B02"]
    data.prepare_data()
    data.setup("fit")
    pixels, _ = data.train_dataset[0]
    # EuroSAT MS stores B01, B02, ..., B12 and then B8A: B8A is the file's 13th band, B02 its 2nd
    with rasterio.open(data.train_dataset.files[0]) as source:
        stored = torch.from_numpy(source.read([13, 2]).astype(np.int32))
    assert pixels.dtype == torch.int32 and torch.equal(pixels, stored)
    assert data.published is None  # a sample in the published layout: its own statistics, of its training split
    assert data.input_bands["names"] == ["B8A", "B02"]
    assert data.input_bands["mean"] == pytest.approx(band_means(data.train_dataset.files, [13, 2]), rel=1e-6)


def band_means(files: list[Path], indexes: list[int]) -> list[float]:
    """The mean of each of the bands ``indexes`` (rasterio's: from 1, in storage order) over all pixels of ``files``."""
    stacked = []
    for file in files:
        with rasterio.open(file) as source:
            stacked.append(source.read(indexes).astype(np.float64))
    return np.stack(stacked).mean(axis=(0, 2, 3)).tolist()


def test_other_multispectral_data_gets_its_own_statistics(ms_root: Path, tmp_path: Path) -> None:
    own = shutil.copytree(ms_root / "EuroSAT_MS", tmp_path / "my_patches")
    data = EuroSATDataModule(root=own, loader=NO_WORKERS, bands=["B02", "B10"])
    stored = np.stack([data.readable.cache[row] for row in data.readable.rows[data.split.train]])
    expected_mean = stored[:, [1, 9]].astype(np.float64).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(data.input_bands["mean"], expected_mean, rtol=1e-9)
    np.testing.assert_allclose(data.input_bands["std"], stored[:, [1, 9]].std(axis=(0, 2, 3)), rtol=1e-6)


def test_bad_bands_are_one_line_before_any_decoding(
    ms_root: Path, sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = shutil.copytree(ms_root, tmp_path / "ms", ignore=shutil.ignore_patterns(".*"))  # no decode cache
    fit = ["fit", *FAST, *TINY_MODEL, f"--trainer.default_root_dir={tmp_path}"]
    message = last_line(cli_error([*fit, f"--data.root={data}", "--data.bands=[B08,B13]"], capsys))
    assert message == (
        f"eurosat: error: data.bands names B13, which the images in {data / 'EuroSAT_MS'} does not have; its bands are "
        f"{', '.join(EUROSAT_MS_BANDS)} (or give 'all')"
    )
    message = last_line(cli_error([*fit, f"--data.root={data}", "--data.bands=[B04,B04]"], capsys))
    assert "name each band once" in message
    message = last_line(cli_error([*fit, f"--data.root={sample_root}", "--data.bands=[B08]"], capsys))
    assert message.startswith("eurosat: error: data.bands=['B08']: the images in") and "are RGB" in message
    assert not list(data.rglob(".decoded-*"))  # refused before the images were decoded

    odd = data / "EuroSAT_MS" / "River" / "River_99.tif"
    with_12 = np.zeros((12, 16, 16), np.uint16)
    import rasterio

    with rasterio.open(odd, "w", driver="GTiff", width=16, height=16, count=12, dtype="uint16") as dst:
        dst.write(with_12)
    message = last_line(cli_error([*fit, f"--data.root={data}"], capsys))
    assert message == (
        f"eurosat: error: {odd} has 12 band(s), not the 13 of EuroSAT MS ({', '.join(EUROSAT_MS_BANDS)}); "
        "remove it, or keep the dataset's images all of one kind"
    )


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


@pytest.mark.slow  # an end-to-end run: the full suite
def test_every_recipe_option_and_the_sample_grid_take_any_band_count(ms_root: Path, tmp_path: Path) -> None:
    """Dihedral augmentation, MixUp/CutMix, TTA and the TensorBoard grid of validation samples, on 13 bands."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = [
        "--data.augment=true",
        "--model.loss.mixup_alpha=0.2",
        "--model.loss.cutmix_alpha=1.0",
        "--trainer.max_epochs=2",
    ]
    run_cli(["fit", *FAST, *TINY_MODEL, *recipe, f"--data.root={ms_root}", f"--trainer.default_root_dir={tmp_path}",
             "--val_samples.num_images=6"])  # fmt: skip
    run = tmp_path / "lightning_logs" / "version_0"
    assert len(EventAccumulator(str(run)).Reload().Images("val/samples")) == 2
    config = yaml_config(run)
    assert "input_bands" not in config["model"] and config["data"]["bands"] is None  # all 13, linked from the data
    run_cli(["test", *FAST, f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}", f"--data.root={ms_root}",
             "--model.tta=true", f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    assert (tmp_path / "lightning_logs" / "version_1" / "confusion_matrix.png").is_file()
    card = (run / "huggingface" / "README.md").read_text()
    folder = ms_root / "EuroSAT_MS"  # a synthetic sample in EuroSAT MS's layout, not EuroSAT MS
    assert f"the images in {folder}: 16 x 16 px images" in card and "Helber" not in card


def yaml_config(run: Path) -> dict:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())


def test_the_sample_grid_shows_b04_b03_b02_stretched() -> None:
    from eurosat_finetune.outputs.validation_samples import true_colour

    images = torch.zeros(2, 4, 8, 8, dtype=torch.int32)
    for channel, value in enumerate((100, 200, 300, 400)):  # B08, B02, B03, B04
        images[:, channel] = torch.linspace(value, value + 1000, 64).reshape(8, 8).int()
    shown = true_colour(images, ["B08", "B02", "B03", "B04"])
    assert shown.dtype == torch.uint8 and shown.shape == (2, 3, 8, 8)
    assert torch.equal(shown[:, 0], shown[:, 1]) and torch.equal(shown[:, 1], shown[:, 2])  # same ramp each band
    assert shown.min() == 0 and shown.max() == 255  # below the 2nd and above the 98th percentile: clipped
    grey = true_colour(images[:, :1], ["B08"])
    assert grey.shape == (2, 3, 8, 8) and torch.equal(grey[:, 0], grey[:, 2])


def write_scene(path: Path, pixels: np.ndarray, descriptions: list[str] | None = None) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    count, height, width = pixels.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": count, "dtype": "uint16"}
    with rasterio.open(path, "w", crs="EPSG:32631", transform=from_origin(500000, 5000000, 10, 10), **profile) as dst:
        dst.write(pixels)
        for band, description in enumerate(descriptions or [], start=1):
            dst.set_band_description(band, description)
    return path


@pytest.mark.slow
def test_a_13_band_scene_maps_as_its_tiles_are_classified(
    fitted: dict[str, Path], ms_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A mosaic of 2 x 3 tiles: its map holds each tile's own prediction, read in EuroSAT MS's band order
    (no descriptions: named by data.scene_bands), by band descriptions in another order, and with the
    2022 offset taken off. An undescribed stack is never assumed to be in either order."""
    import rasterio

    tiles = [ms_root / "EuroSAT_MS" / name / f"{name}_{n}.tif" for name in CLASSES for n in (1, 2)]
    stored = [rasterio.open(tile).read() for tile in tiles]
    mosaic = np.concatenate([np.concatenate(stored[row * 3 : row * 3 + 3], axis=2) for row in range(2)], axis=1)
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    write_scene(scenes / "ordered.tif", mosaic)
    order = ["B04", "B8A", "B08", "B02"]  # described, not in EuroSAT's order, 2022's offset added
    picked = mosaic[[EUROSAT_MS_BANDS.index(band) for band in order]] + 1000
    write_scene(scenes / "described.tif", picked, ["B4", "B8A (narrow NIR)", "B08", "b02"])
    best = fitted["signal"] / "checkpoints" / "best.ckpt"
    common = ["predict", *FAST, f"--ckpt_path={best}", f"--data.root={tmp_path / 'none'}"]
    runs = f"--trainer.default_root_dir={tmp_path}"
    each = tmp_path / "each"
    each.mkdir()
    for i, tile in enumerate(tiles):
        shutil.copy(tile, each / f"{i}.tif")
    run_cli(
        [*common, f"--data.predict_root={each}", "--data.maps.scenes=none", f"--trainer.default_root_dir={tmp_path}"]
    )
    with open(tmp_path / "lightning_logs" / "version_0" / "predictions.csv") as f:
        alone = {Path(row["path"]).stem: CLASSES.index(row["predicted_class"]) for row in csv.DictReader(f)}
    expected = np.array([alone[str(i)] for i in range(6)]).reshape(2, 3)
    eurosat_order = f"--data.maps.raster_bands=[{','.join(EUROSAT_MS_BANDS)}]"
    offset = ["--data.maps.raster_offset=1000", eurosat_order]
    run_cli([*common, f"--data.predict_root={scenes}", *offset, f"--trainer.default_root_dir={tmp_path}"])
    maps = tmp_path / "lightning_logs" / "version_1" / "maps"
    with rasterio.open(maps / "described.classes.tif") as source:
        np.testing.assert_array_equal(source.read(1), expected)
    assert (maps / "described.preview.png").is_file()
    run_cli([*common, f"--data.predict_root={scenes}", eurosat_order, runs])  # no offset
    with rasterio.open(tmp_path / "lightning_logs" / "version_2" / "maps" / "ordered.classes.tif") as source:
        np.testing.assert_array_equal(source.read(1), expected)

    for name, descriptions in (("unnamed", None), ("no-b08", ["B02", "B03", "B04", "B8A"])):
        bad = tmp_path / name
        bad.mkdir()
        write_scene(bad / "scene.tif", mosaic[:4], descriptions)
        message = last_line(
            cli_error([*common, f"--data.predict_root={bad}", f"--trainer.default_root_dir={bad}"], capsys)
        )
        if descriptions is None:
            assert message == (
                f"eurosat: error: {bad / 'scene.tif'} has 4 band(s) whose descriptions name no Sentinel-2 bands; "
                "the model reads 1 band(s), B08: name the file's bands in file order with data.maps.raster_bands, "
                "a list of 4 names such as B02, B03, B04, B08"
            )
            named = [*common, f"--data.predict_root={bad}", "--data.maps.raster_bands=[B01,B02,B03,B08]"]
            run_cli([*named, f"--trainer.default_root_dir={bad}"])  # named on the command line: mapped
        else:
            assert message == (
                f"eurosat: error: {bad / 'scene.tif'} has no band B08 (its bands: B02, B03, B04, B8A); the model "
                "was trained on B08: map scenes that hold all of them"
            )


def test_ms_yaml_stacks_on_fit_yaml_and_on_the_cpu_recipe(capsys: pytest.CaptureFixture) -> None:
    import yaml
    from conftest import REPO

    configs = REPO / "configs"
    for stack in (["fit.yaml", "ms.yaml"], ["fit.yaml", "cpu.yaml", "ms.yaml"]):
        command = ["fit", *(arg for name in stack for arg in ("--config", str(configs / name))), "--print_config"]
        printed = yaml.safe_load(run_cli(command, capsys))
        assert printed["data"]["bands"] == "all" and printed["data"]["root"] == "data/ms"
        download = printed["data"]["download"]
        assert download["url"].endswith("EuroSAT_MS.zip?download=1") and download["enabled"] is True
        assert printed["model"]["input"]["mean"] is None and printed["model"]["network"]["new_channels"] == "zeros"
    # the CPU recipe's network, on 13 bands
    assert printed["model"]["network"]["architecture"]["model_type"] == "resnet"


def test_normalisation_of_another_channel_count_is_one_line() -> None:
    from eurosat_finetune.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"model\.input\.mean has 3 and model\.input\.std 3 values for a network of 13"
    ):
        ImageClassifier(
            CLASSES,
            network=NetworkOptions(pretrained=None, architecture={"model_type": "vit", **TINY_VIT}),
            input=InputOptions(mean=[0.5] * 3, std=[0.5] * 3),
            input_bands=all_bands(),
        )


@pytest.mark.slow  # an end-to-end run: the full suite
def test_the_export_on_a_13_band_array_gives_what_predict_gives(ms_root: Path, tmp_path: Path) -> None:
    """AutoImageProcessor and AutoModelForImageClassification on the stored uint16 array, as other tools
    would run the export, against `eurosat predict` on the same files."""
    import rasterio
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    runs = f"--trainer.default_root_dir={tmp_path}"
    run_cli(["fit", *FAST, *TINY_MODEL, "--trainer.max_epochs=2", f"--data.root={ms_root}", runs])
    run = tmp_path / "lightning_logs" / "version_0"
    files = sorted((ms_root / "EuroSAT_MS" / "River").glob("*.tif"))[:5]
    patches = tmp_path / "patches"
    patches.mkdir()
    for file in files:
        shutil.copy(file, patches / file.name)
    args = [f"--data.root={ms_root}", f"--data.predict_root={patches}", "--data.maps.scenes=none", runs]
    run_cli(["predict", *FAST, f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}", *args])
    with open(tmp_path / "lightning_logs" / "version_1" / "predictions.csv") as f:
        predicted = {Path(row["path"]).name: row for row in csv.DictReader(f)}

    processor = AutoImageProcessor.from_pretrained(run / "huggingface")
    model = AutoModelForImageClassification.from_pretrained(run / "huggingface").eval()
    assert model.config.num_channels == 13 and len(processor.image_mean) == 13 and not processor.do_rescale
    for file in files:
        with rasterio.open(file) as source:
            stored = source.read().astype(np.float32)  # (13, H, W) as stored; as float, not rounded once resized
        inputs = processor(stored, return_tensors="pt", input_data_format="channels_first")
        with torch.no_grad():
            probs = model(**inputs).logits.softmax(dim=-1)[0]
        row = predicted[file.name]
        assert model.config.id2label[int(probs.argmax())] == row["predicted_class"]
        np.testing.assert_allclose(probs.numpy(), [float(row[name]) for name in CLASSES], atol=1e-5)


@pytest.mark.slow  # the two fits of `fitted`
def test_test_and_validate_take_the_checkpoints_bands(
    fitted: dict[str, Path], ms_root: Path, sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A checkpoint trained on B08 alone is evaluated on B08 without ``--data.bands``; naming other bands
    is the one-line refusal it always was."""
    best = fitted["signal"] / "checkpoints" / "best.ckpt"
    common = [*FAST, f"--ckpt_path={best}", f"--data.root={ms_root}", "--trainer.logger=CSVLogger"]
    run_cli(["test", *common, f"--trainer.logger.save_dir={tmp_path / 'test'}"])
    assert read_metrics(version_dir(tmp_path / "test", 0))["test_acc"] >= 0.9  # the classes are in B08
    run_cli(["validate", *common, f"--trainer.logger.save_dir={tmp_path / 'validate'}"])
    assert read_metrics(version_dir(tmp_path / "validate", 0))["val_acc"] == 1.0  # as in its fit
    refusal = cli_error(["test", *common, "--data.bands=[B04]", f"--trainer.logger.save_dir={tmp_path}"], capsys)
    assert refusal.strip() == (
        "eurosat: error: the checkpoint was trained on bands ['B08'] but the data gives ['B04']; "
        "evaluate it on data with the checkpoint's bands (leave data.bands out: it then takes them)"
    )
    # another number of bands: the same line, before the model is built for the checkpoint's one channel
    refusal = cli_error(
        ["validate", *common, "--data.bands=[B04,B03,B02]", f"--trainer.logger.save_dir={tmp_path}"], capsys
    )
    assert refusal.strip() == (
        "eurosat: error: the checkpoint was trained on bands ['B08'] but the data gives ['B04', 'B03', 'B02']; "
        "evaluate it on data with the checkpoint's bands (leave data.bands out: it then takes them)"
    )
    on_rgb = cli_error(["test", *common[:-2], f"--data.root={sample_root}", "--trainer.logger=CSVLogger",
                        f"--trainer.logger.save_dir={tmp_path}"], capsys)  # fmt: skip
    assert on_rgb.strip().endswith(
        "are RGB, trained on as stored (B04, B03, B02); a model trained on these bands (a multispectral "
        "checkpoint's, unless the command names others) needs multispectral images"
    )


@pytest.mark.slow  # an end-to-end run: the full suite
@pytest.mark.parametrize("kind", ["EuroSAT RGB", "EuroSAT MS"])
def test_eurosat_is_recognised_by_its_files_not_by_its_folders_name(kind: str, ms_root: Path, tmp_path: Path) -> None:
    """A complete copy of EuroSAT under another name is EuroSAT (MS: the published band statistics, with
    nothing decoded); a folder named ``EuroSAT_MS`` that holds other images, or EuroSAT less one image, is not."""
    one = tmp_path / ("one.tif" if kind == "EuroSAT MS" else "one.jpg")
    if kind == "EuroSAT MS":
        profile = {"driver": "GTiff", "width": 64, "height": 64, "count": 13, "dtype": "uint16"}
        with rasterio.open(one, "w", **profile) as dst:
            dst.write(np.full((13, 64, 64), 1000, np.uint16))
    else:
        Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(one)
    copy = link_published_layout(tmp_path / "my_copy", one)  # 27,000 names of one real image
    data = EuroSATDataModule(root=copy, loader=NO_WORKERS, bands=["B02", "B8A"] if kind == "EuroSAT MS" else None)
    assert data.published == kind
    if kind == "EuroSAT MS":
        assert data.input_bands == {"names": ["B02", "B8A"], "mean": [1118.24, 2594.14], "std": [333.01, 1231.59]}
        assert not [p for p in copy.rglob(".*")]  # the published statistics: nothing decoded
    (copy / "Forest" / f"Forest_7{one.suffix}").unlink()
    assert EuroSATDataModule(root=copy, loader=NO_WORKERS).published is None
    assert EuroSATDataModule(root=ms_root, loader=NO_WORKERS).published is None  # named EuroSAT_MS, not EuroSAT MS
