"""``model.weights``: Sentinel-2 pretrained timm state dicts (SSL4EO-S12's, or any), fetched over HTTP once
and checked, their first layer matched to the data's bands by name, their normalisation used, and
everything trained from them restored offline. The state dicts are made here with timm (in_chans=13),
as TorchGeo's files are, and served on 127.0.0.1 under names that carry their own hash prefix."""

import csv
import functools
import hashlib
import http.server
import json
import logging
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import timm
import torch
import yaml
from conftest import FAST, REPO, accuracy_on_test_split, cli_error, run_cli

from eurosat_finetune.data.bands import ESA_BANDS, EUROSAT_MS_BANDS, EUROSAT_MS_MEAN, EUROSAT_MS_STD, RGB_BANDS
from eurosat_finetune.errors import ModelLoadError
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.options import InputOptions, NetworkOptions
from eurosat_finetune.model.pretrained_weights import WeightsSpec
from eurosat_finetune.model.sentinel2_weights import KNOWN_WEIGHTS
from eurosat_finetune.model.weights_file import downloaded

CLASSES = ["Forest", "River", "SeaLake"]
REFLECTANCE = {"mean": (0.0,) * 13, "std": (10_000.0,) * 13}
STARTS_NEW = NetworkOptions(pretrained=None)  # the network is the weights' timm model


@functools.cache  # the same seed makes the same tensors: drawn once (0.7 s), saved by every test that asks
def resnet18_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return timm.create_model("resnet18", in_chans=13, num_classes=0).state_dict()


def state_dict_file(folder: Path, stem: str = "resnet18_sentinel2_test", seed: int = 0) -> Path:
    """A timm ResNet-18 state dict for 13 bands, saved as ``<stem>-<first 8 hex of its SHA-256>.pth``."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "raw.pth"
    torch.save(resnet18_state(seed), raw)
    torch.manual_seed(seed)  # and what the test draws next is the same on every run, cached or not
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    return raw.rename(folder / f"{stem}-{digest[:8]}.pth")


class Server:
    """An HTTP server on 127.0.0.1 for ``folder`` that counts its GET requests and can be stopped."""

    def __init__(self, folder: Path, delay: float = 0.0) -> None:
        requests = self.requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                time.sleep(delay)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
        )
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def bands_of(names: list[str]) -> dict[str, list]:
    return {"names": names, "mean": [EUROSAT_MS_MEAN[b] for b in names], "std": [EUROSAT_MS_STD[b] for b in names]}


def from_weights(
    location: str | Path,
    bands: list[str] | None,
    timm_model: str = "resnet18",
    network: NetworkOptions = STARTS_NEW,
    image_size: int | None = None,
) -> ImageClassifier:
    """A classifier started from the state dict at ``location``: timm's ``timm_model`` for the 13 bands."""
    weights = WeightsSpec(str(location), timm_model, ESA_BANDS, **REFLECTANCE)
    input = InputOptions(size=image_size)
    return ImageClassifier(CLASSES, network, weights, input, input_bands=bands and bands_of(bands)).eval()


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache of the test's own."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def cached_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.is_file()) if cache.exists() else []


def test_served_weights_are_downloaded_once_checked_and_then_read_offline(
    tmp_path: Path, torch_home: Path, serve_dir
) -> None:
    served = state_dict_file(tmp_path / "served")
    url = f"{serve_dir(served.parent)}/{served.name}"
    torch_home.mkdir(parents=True)
    (torch_home / f".{served.name}.0123abcd.part").write_bytes(b"another url's")  # of no use to this one
    from_weights(url, None)
    assert cached_files(torch_home) == [served.name]
    assert (torch_home / served.name).read_bytes() == served.read_bytes()
    # the server gone (a closed port): the cached file, found by its name
    model = from_weights(f"http://127.0.0.1:9/{served.name}", None)
    assert model.pretrained_from == f"http://127.0.0.1:9/{served.name}"


@pytest.mark.slow  # the full suite; the quick one keeps the served weights' download
def test_a_download_that_does_not_match_its_hash_is_refused_and_leaves_nothing(
    tmp_path: Path, torch_home: Path, serve_dir
) -> None:
    served = state_dict_file(tmp_path / "served")
    wrong = served.rename(served.with_name("resnet18_sentinel2_test-0123abcd.pth"))
    with pytest.raises(ModelLoadError) as err:
        from_weights(f"{serve_dir(wrong.parent)}/{wrong.name}", None)
    message = str(err.value)
    assert "\n" not in message and "not 0123abcd; the file was removed" in message and wrong.name in message
    assert cached_files(torch_home) == []  # neither the file nor a partial download
    # a file put in the cache by hand is checked too
    torch_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(wrong, torch_home / wrong.name)
    with pytest.raises(ModelLoadError, match="not the 0123abcd its name says; delete it"):
        from_weights(f"http://127.0.0.1:9/{wrong.name}", None)


@pytest.mark.slow  # the full suite; the quick one keeps the served weights' download
def test_ranks_starting_together_download_once(
    tmp_path: Path, torch_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As the ranks of torchrun or SLURM do: both ask for the weights at once, one downloads (a slow
    server makes them overlap), the other waits for it and reads the same file. Two threads stand in for
    the two processes: the lock is flock's, held by an open file, which another file opened in the same
    process waits for as another process's would (test_launchers.py starts the processes themselves)."""
    served = state_dict_file(tmp_path / "served")
    server = Server(served.parent, delay=0.5)  # long enough for the second to find the first holding the lock
    url = f"{server.url}/{served.name}"
    caplog.set_level(logging.INFO, logger="eurosat_finetune")
    try:
        with ThreadPoolExecutor(2) as ranks:
            outputs = list(ranks.map(lambda _: downloaded(url, "model.weights"), range(2)))
    finally:
        server.stop()
    assert server.requests == [f"/{served.name}"]
    assert sum("Waiting for another process to finish downloading" in m for m in caplog.messages) == 1
    assert outputs[0] == outputs[1] == torch_home / served.name and outputs[0].read_bytes() == served.read_bytes()


def reference(state: dict, channels: list[int], head: torch.nn.Module) -> torch.nn.Module:
    """timm's ResNet-18 loaded as timm loads it, with only the input channels ``channels`` (ESA indices)
    of its first layer kept, and the package network's new head."""
    state = dict(state)
    state["conv1.weight"] = state["conv1.weight"][:, channels]
    net = timm.create_model("resnet18", in_chans=len(channels), num_classes=len(CLASSES))
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert set(missing) == {"fc.weight", "fc.bias"} and not unexpected
    net.fc.load_state_dict(head.state_dict())
    return net.eval()


@pytest.mark.parametrize(
    "bands",
    [
        pytest.param(list(EUROSAT_MS_BANDS), id="13 bands in EuroSAT's order", marks=pytest.mark.slow),
        pytest.param([b for b in EUROSAT_MS_BANDS if b != "B10"], id="12 bands of L2A", marks=pytest.mark.slow),
        pytest.param(["B8A", "B04", "B08", "B02"], id="4 bands reordered"),  # the quick suite's case
    ],
)
def test_bands_are_matched_to_the_weights_by_name(bands: list[str], tmp_path: Path) -> None:
    """The package's network on a batch in the data's order gives the logits timm gives on the same
    batch in ESA order, with the filters of the bands the data lacks removed."""
    file = state_dict_file(tmp_path)
    model = from_weights(file, bands, image_size=16)
    stored = torch.randint(0, 10_000, (4, len(bands), 16, 16), dtype=torch.int32)  # reflectance x 10,000
    esa = sorted(range(len(bands)), key=lambda i: ESA_BANDS.index(bands[i]))  # the batch's channels in ESA order
    timm_net = reference(torch.load(file), [ESA_BANDS.index(bands[i]) for i in esa], model.net.timm_model.fc)
    with torch.no_grad():
        ours = model(stored)
        theirs = timm_net(stored[:, esa].float() / 10_000)  # the weights' normalisation: reflectance
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert model.image_mean == [0.0] * len(bands) and model.image_std == [10_000.0] * len(bands)


def test_rgb_images_take_the_weights_red_green_and_blue_filters_as_true_colour(tmp_path: Path) -> None:
    """8-bit true colour is reflectance 0 to 0.2 (ESA's TCI): a pixel of 255 is reflectance 0.2."""
    file = state_dict_file(tmp_path)
    model = from_weights(file, None, image_size=16)
    pixels = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    timm_net = reference(torch.load(file), [ESA_BANDS.index(b) for b in RGB_BANDS], model.net.timm_model.fc)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels), timm_net(pixels.float() / 255 * 0.2), atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # the full suite; the quick one matches bands by name
def test_new_bands_start_as_new_channels_says(tmp_path: Path) -> None:
    """Weights of four bands on data of five: the filters of the four by name, the fifth new."""
    file = tmp_path / "four.pth"
    torch.save(timm.create_model("resnet18", in_chans=4, num_classes=0).state_dict(), file)
    weights = WeightsSpec(str(file), "resnet18", ("B2", "B3", "B4", "B8"), (0.0,) * 4, (1e4,) * 4)
    data = ["B08", "B11", "B04", "B03", "B02"]
    for new_channels in ("zeros", "mean"):
        network = NetworkOptions(pretrained=None, new_channels=new_channels)
        model = ImageClassifier(CLASSES, network, weights, input_bands=bands_of(data))
        filters, pretrained = model.net.timm_model.conv1.weight, torch.load(file)["conv1.weight"]
        torch.testing.assert_close(filters[:, [0, 2, 3, 4]], pretrained[:, [3, 2, 1, 0]])
        new = torch.zeros_like(filters[:, 1]) if new_channels == "zeros" else pretrained.mean(dim=1)
        torch.testing.assert_close(filters[:, 1], new)
        # the new band keeps the data's statistics; the others take the weights'
        assert model.image_mean == [0.0, EUROSAT_MS_MEAN["B11"], 0.0, 0.0, 0.0]


def test_a_vit_without_its_final_norm_loads_as_timm_loads_it(tmp_path: Path) -> None:
    """SSL4EO-S12's MoCo and MAE ViT encoders have no final norm: the rest loads, the norm starts as timm's."""
    torch.manual_seed(0)
    state = timm.create_model("test_vit", in_chans=13, num_classes=0).state_dict()
    state = {key: value for key, value in state.items() if not key.startswith("norm.")}
    torch.save(state, tmp_path / "vit.pth")
    model = from_weights(tmp_path / "vit.pth", list(EUROSAT_MS_BANDS), timm_model="test_vit")
    assert model.image_size == 160  # the weights' pretraining size (timm's pretrained_cfg)
    timm_net = timm.create_model("test_vit", in_chans=13, num_classes=len(CLASSES)).eval()
    timm_net.load_state_dict(state, strict=False)
    timm_net.head.load_state_dict(model.net.timm_model.head.state_dict())
    stored = torch.randint(0, 10_000, (2, 13, 64, 64), dtype=torch.int32)
    esa = [EUROSAT_MS_BANDS.index(band) for band in ESA_BANDS]
    with torch.no_grad():
        theirs = timm_net(torch.nn.functional.interpolate(stored[:, esa].float(), size=160, mode="bilinear") / 1e4)
        torch.testing.assert_close(model(stored), theirs, atol=1e-4, rtol=1e-4)


def test_what_a_weights_file_lacks_is_one_line(tmp_path: Path) -> None:
    file = state_dict_file(tmp_path)
    with pytest.raises(Exception, match=r"a state dict of its own needs a spec, \{location: .*, timm_model: "):
        ImageClassifier(CLASSES, STARTS_NEW, str(file))
    with pytest.raises(Exception, match=r"not a known name; known names are ResNet18_Weights.SENTINEL2_ALL_MOCO, "):
        ImageClassifier(CLASSES, STARTS_NEW, "ResNet50_Weights.SENTINEL2_ALL_MOKO")
    with pytest.raises(ModelLoadError, match=r"does not fit timm.s resnet50 with 13 input channels: \d+ weights of"):
        from_weights(file, None, timm_model="resnet50")
    with pytest.raises(Exception, match=r"both name the network to start from"):
        from_weights(file, None, network=NetworkOptions(pretrained="google/vit-base-patch16-224"))
    with pytest.raises(Exception, match=r"model.weights.timm_model='resnet99' is not a timm model in timm "):
        from_weights(file, None, timm_model="resnet99")
    with pytest.raises(Exception, match=r"give timm's architecture name \(e.g. resnet50\)"):
        from_weights(file, None, timm_model="hf-hub:timm/resnet18.a1_in1k")
    with pytest.raises(Exception, match=r"is known and brings its own model, bands and normalisation: give it alone"):
        from_weights("ResNet18_Weights.SENTINEL2_ALL_MOCO", None)
    overrides = NetworkOptions(pretrained=None, config_overrides={"model_type": "resnet", "depths": [1, 1, 1, 1]})
    with pytest.raises(Exception, match=r"model_type='resnet', but model.weights makes a timm network"):
        from_weights(file, None, network=overrides)


def test_a_copy_of_a_known_file_is_recognised_by_its_name_and_checked(tmp_path: Path, torch_home: Path) -> None:
    """Given by path under its known name, it needs no other option, and its hash is the known file's."""
    known = KNOWN_WEIGHTS["ResNet18_Weights.SENTINEL2_ALL_MOCO"].url.rsplit("/", 1)[-1]
    copy = state_dict_file(tmp_path).rename(tmp_path / known)  # a timm ResNet-18 for 13 bands, not the real file
    with pytest.raises(ModelLoadError, match=rf"{copy} has SHA-256 \w+\.\.\., not the 59bfdff9 its name says"):
        ImageClassifier(CLASSES, STARTS_NEW, str(copy))
    assert cached_files(torch_home) == []


def test_a_known_name_offline_stops_before_training_in_one_line(
    ms_root: Path, tmp_path: Path, torch_home: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline: the known file's server cannot be reached. The message names the URL and the way round it;
    the cache holds nothing half-written; no run was started."""
    # hf.co stands in as a closed port on this machine, so that where hf.co is reachable the test neither
    # downloads the 94 MB file nor starts ssl4eo.yaml's fit (which one epoch of one batch would bound anyway)
    name = "ResNet50_Weights.SENTINEL2_ALL_MOCO"
    url = f"http://127.0.0.1:9/{KNOWN_WEIGHTS[name].url.rsplit('/', 1)[-1]}"
    monkeypatch.setitem(KNOWN_WEIGHTS, name, replace(KNOWN_WEIGHTS[name], url=url))
    configs = [f"--config={REPO / 'configs' / config}" for config in ("fit.yaml", "ms.yaml", "ssl4eo.yaml")]
    runs = tmp_path / "runs"
    logs = [f"--trainer.logger.init_args.save_dir={runs}", f"--trainer.default_root_dir={runs}"]
    short = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"]
    message = cli_error(["fit", *configs, *FAST, *short, f"--data.root={ms_root}", *logs], capsys)
    assert message.count("\n") == 1 and f"model.weights: cannot download {url} (" in message
    assert f"put it in {torch_home} as {url.rsplit('/', 1)[-1]}, or give its path as model.weights" in message
    assert cached_files(torch_home) == [] and not runs.exists()


def test_the_ssl4eo_config_stacks_on_fit_and_ms(capsys: pytest.CaptureFixture) -> None:
    configs = [f"--config={REPO / 'configs' / config}" for config in ("fit.yaml", "ms.yaml", "ssl4eo.yaml")]
    printed = yaml.safe_load(run_cli(["fit", *configs, "--print_config"], capsys))
    assert printed["model"]["weights"] == "ResNet50_Weights.SENTINEL2_ALL_MOCO"
    assert printed["model"]["network"]["pretrained"] is None and printed["data"]["bands"] == "all"


@pytest.mark.slow  # fit, test, predict and two exports of a ResNet-18
def test_fit_test_predict_and_export_from_served_weights_then_restore_offline(
    ms_root: Path, tmp_path: Path, torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = state_dict_file(tmp_path / "served")
    server = Server(served.parent)
    spec = {"location": f"{server.url}/{served.name}", "timm_model": "resnet18", "bands": list(ESA_BANDS),
            "mean": [0] * 13, "std": [10000] * 13}  # fmt: skip
    weights = [f"--model.weights={json.dumps(spec)}", "--model.network.pretrained=null"]
    runs = f"--trainer.default_root_dir={tmp_path}"
    # the ONNX export is checked below, the resumed run's: the first run's Hugging Face export alone here
    run_cli(["fit", *FAST, *weights, "--model.input.size=32", "--trainer.max_epochs=2",
             f"--data.root={ms_root}", "--data.bands=[B8A,B04,B08]", runs])  # fmt: skip
    run = tmp_path / "lightning_logs" / "version_0"
    best = run / "checkpoints" / "best.ckpt"
    saved = torch.load(best, weights_only=False)
    assert saved["hyper_parameters"]["weights"] is None and saved["pretrained_from"].endswith(served.name)
    assert saved["hyper_parameters"]["input"]["std"] == [10000.0] * 3

    # offline: no server, no cache, the checkpoint alone
    server.stop()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-cache"))
    # resumed as `last` with the command that started it, and the ONNX export: the network from the checkpoint,
    # not fetched
    run_cli(["fit", *FAST, *weights, "--model.input.size=32", "--trainer.max_epochs=3", "--export.onnx=true",
             f"--data.root={ms_root}", "--data.bands=[B8A,B04,B08]", runs, "--ckpt_path=last"])  # fmt: skip
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2
    run_cli(["test", *FAST, f"--ckpt_path={best}", f"--data.root={ms_root}", runs])
    report = json.loads((tmp_path / "lightning_logs" / "version_1" / "classification_report.json").read_text())
    assert report["macro avg"]["support"] == 12  # the 12 test images classified, as the checkpoint classifies them
    assert report["accuracy"] == pytest.approx(accuracy_on_test_split(best, ms_root, bands=["B8A", "B04", "B08"]))
    patches = tmp_path / "patches"
    patches.mkdir()
    files = sorted((ms_root / "EuroSAT_MS").rglob("*.tif"))[::6][:8]
    for file in files:
        shutil.copy(file, patches / file.name)
    output = tmp_path / "predictions.csv"
    run_cli(["predict", *FAST, f"--ckpt_path={best}", f"--data.predict_root={patches}", "--data.maps.scenes=none",
             f"--predictions.output={output}", runs])  # fmt: skip
    rows = {Path(row["path"]).name: row for row in csv.DictReader(output.open())}
    assert not (tmp_path / "no-cache").exists()  # nothing was fetched

    import rasterio
    from transformers import AutoModelForImageClassification

    exported = AutoModelForImageClassification.from_pretrained(run / "huggingface")  # offline, timm inside
    assert exported.config.architecture == "resnet18" and exported.config.model_args["in_chans"] == 3
    card = (run / "huggingface" / "README.md").read_text()
    assert "base_model" not in card and "Sentinel-2 pretrained weights `http://127.0.0.1:" in card
    session = onnxruntime.InferenceSession(run / "huggingface" / "model.onnx")
    metadata = {key: json.loads(value) for key, value in session.get_modelmeta().custom_metadata_map.items()}
    assert metadata["bands"] == ["B8A", "B04", "B08"]
    stored = []
    for file in files:
        with rasterio.open(file) as source:
            stored.append(source.read([13, 4, 8]))  # B8A is stored last in EuroSAT MS
    probs = session.run(None, {"pixels": np.stack(stored)})[0]
    for file, file_probs in zip(files, probs, strict=True):
        np.testing.assert_allclose(file_probs, [float(rows[file.name][name]) for name in CLASSES], atol=1e-4)
