"""Shared fixtures: small real objects made on the spot (JPEG datasets, a tiny saved ViT, a zip server)."""

import faulthandler
import functools
import gc
import http.server
import math
import os
import shutil
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

# torch, transformers and the package are imported where they are used, not here: pytest-xdist's
# controller loads this file too, and importing them there adds about 10 s to every run of the suite

# Hermetic: the suite's downloads come from servers on 127.0.0.1 (nothing reaches the internet), which
# huggingface_hub's offline mode, set on offline clusters, refuses. The variables are dropped here, before
# huggingface_hub reads them at its import, in this process, pytest-xdist's workers and every subprocess
# a test starts; the tests of offline mode set it themselves.
for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.pop(variable, None)
if "huggingface_hub.constants" in sys.modules:  # imported already (by a plugin): it has read them
    sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE = False

# pytest-xdist's workers share the cores: each worker's torch (and each process a test starts) gets its
# share of threads. Left at one thread a core, 2 workers on 2 cores spin in OpenMP's waits for each other's
# cores: the quick suite took 125 s of CPU and 70 s instead of 105 s and 62 s, and 184 s of CPU where other
# jobs shared the machine. Read by torch when it is imported.
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ["OMP_NUM_THREADS"] = str(max(1, cores // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))

# torch.compile's Inductor compiles in a pool of worker processes by default (2 here); in CI containers that
# pool has been seen to hang its caller forever (AReaL#701, pytorch#162199). The suite's compiled networks
# are tiny: compiled in the test's own process, nothing waits on another process. Read at Inductor's import.
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
REAL_ZIP = REPO.parent / "shared" / "data" / "EuroSAT_RGB.zip"
REAL_ZIP_MD5 = "ea036c2789aa0f5467ce95ed70422d00"

TINY_VIT = {
    "image_size": 32,
    "patch_size": 8,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected: the sizes of the modules that run
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules whose every test starts processes (marked slow as a whole) run first, the others after
    them, larger modules first. pytest-xdist hands each worker a whole module (``--dist loadscope``, its
    own reordering off in pyproject.toml) as the worker frees up: a module of a few long subprocess
    runs (test_read_only's 2 minutes, one after the other) left for last would keep one worker busy
    alone at the end while the other sits idle."""

    def module_of(item: pytest.Item) -> pytest.Module | None:
        return item.getparent(pytest.Module)

    def starts_processes(module: pytest.Module | None) -> bool:
        return module is not None and any(mark.name == "slow" for mark in module.own_markers)

    sizes = Counter(module_of(item) for item in items)
    items.sort(key=lambda item: (not starts_processes(module_of(item)), -sizes[module_of(item)]))


STDERR: list[int] = []  # this process's stderr as pytest found it (it captures fd 2 for each test)


def pytest_configure(config: pytest.Config) -> None:
    STDERR.append(os.dup(2))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A crash (a fatal signal) prints every thread's stack to stderr, whatever ran before: faulthandler sets
    its handlers in C, so Python's signal module reports none, and at the end of every run Lightning sets
    each signal back to what that module reported (``_SignalConnector.teardown``), the default."""
    faulthandler.disable()  # enable() alone keeps what it believes is still set
    faulthandler.enable(file=STDERR[0], all_threads=True)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The modules imported so far (torch, Lightning, transformers: about a million objects) live as long
    as the session: moved out of the garbage collector's sight, each full collection no longer walks them."""
    gc.freeze()


# Trainer and data options that keep a CLI run to a few seconds on 2 CPU cores.
FAST = [
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--data.loader.num_workers=0",
    "--data.loader.batch_size=16",
]


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic EuroSAT-layout dataset: 10 classes x 20 JPEGs of 32x32 (read-only by convention)."""
    from eurosat_finetune.data.patches.synthetic import write_sample_dataset

    root = tmp_path_factory.mktemp("sample")
    write_sample_dataset(root, images_per_class=20, image_size=32)
    return root


@pytest.fixture(scope="session")
def tiny_vit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 'pretrained' ViT with a 1000-class head, saved like a hub checkpoint."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    path = tmp_path_factory.mktemp("tiny-vit")
    model = ViTForImageClassification(ViTConfig(**TINY_VIT, num_labels=1000))
    model.save_pretrained(path)
    processor = ViTImageProcessor(
        size={"height": 32, "width": 32}, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.25, 0.3]
    )
    processor.save_pretrained(path)
    return path


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """huggingface_hub offline, with an empty cache of the test's own: what HF_HUB_OFFLINE=1 and an empty
    HF_HOME give a fresh process, set in this one through the constants huggingface_hub read them into
    when it was imported (transformers asks it at each call). Returns that HF_HOME."""
    from huggingface_hub import constants

    home = tmp_path / "empty-hf-home"
    home.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_ASSETS_CACHE", str(home / "assets"))
    return home


@pytest.fixture
def serve_dir() -> Iterator:
    """Serve a directory over HTTP on 127.0.0.1; yields a function ``dir -> base url``."""
    servers = []

    def start(directory: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def zip_dataset(src_root: Path, dest: Path) -> Path:
    """Zip ``src_root``'s contents (e.g. ``EuroSAT_RGB/<Class>/...``) to ``dest``; return the zip."""
    return Path(shutil.make_archive(str(dest.with_suffix("")), "zip", root_dir=src_root))


def run_cli(args: list[str], capsys: pytest.CaptureFixture | None = None) -> str:
    """Run ``eurosat`` in-process; return what it printed (for ``--print_config``, which exits 0)."""
    from eurosat_finetune.cli import main

    try:
        main(args)
    except SystemExit as exit:
        assert exit.code in (0, None), f"eurosat {' '.join(args)} exited with {exit.code}"
    return capsys.readouterr().out if capsys is not None else ""


def cli_error(args: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run ``eurosat`` expecting a user error: exit status 2 and a message on stderr; return the message."""
    from eurosat_finetune.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        main(args)
    assert exit.value.code == 2, f"eurosat {' '.join(args)} exited with {exit.value.code}"
    lines = capsys.readouterr().err.splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("INFO: "))  # progress messages, not the error


def read_metrics(log_dir: Path) -> dict[str, float]:
    """The last logged value of every metric in a CSVLogger's metrics.csv."""
    import csv

    values: dict[str, float] = {}
    with open(log_dir / "metrics.csv") as f:
        for row in csv.DictReader(f):
            values.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return values


def accuracy_on_test_split(checkpoint: Path, root: Path, **data_options: object) -> float:
    """The accuracy of ``checkpoint``'s model on the test split of ``root``, computed here without Lightning."""
    import torch

    from eurosat_finetune.data.datamodule import EuroSATDataModule
    from eurosat_finetune.data.loaders import LoaderOptions
    from eurosat_finetune.model import ImageClassifier

    model = ImageClassifier.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    data = EuroSATDataModule(root=root, loader=LoaderOptions(num_workers=0), **data_options)
    data.setup("test")
    images = torch.stack([data.test_dataset[i][0] for i in range(len(data.test_dataset))])
    with torch.no_grad():
        predicted = model(images).argmax(dim=-1)
    return (predicted == torch.tensor(data.test_dataset.labels)).float().mean().item()


def write_config(path: Path, data_root: Path, log_dir: Path, **trainer: object) -> Path:
    """A run config like configs/*.yaml, with CSV metrics (easy to read back); the CLI keeps best + last checkpoints."""
    config = {
        "trainer": {
            "max_epochs": 2,
            "logger": {"class_path": "CSVLogger", "init_args": {"save_dir": str(log_dir)}},
            **trainer,
        },
        "data": {"root": str(data_root)},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def wilson_by_hand(right: int, images: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson's 95% score interval, from its formula (Wilson 1927; Newcombe 1998, method 3)."""
    centre = (right + z**2 / 2) / (images + z**2)
    half = z * math.sqrt(right * (images - right) / images + z**2 / 4) / (images + z**2)
    return centre - half, centre + half


def version_dir(log_dir: Path, n: int) -> Path:
    return log_dir / "lightning_logs" / f"version_{n}"


@pytest.fixture(scope="session")
def ms_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic EuroSAT MS in Zenodo's layout: 3 classes x 20 GeoTIFFs of 16 x 16 px, told apart by B08 alone."""
    from fakes.multispectral import write_multispectral_sample

    root = tmp_path_factory.mktemp("ms")
    write_multispectral_sample(root)
    return root


LONG_MODULE = 400  # lines: a review signal (read it for two concepts to split), not a rule to squeeze to


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the package's modules longer than LONG_MODULE lines at the end of the run."""
    long = {
        path.relative_to(REPO).as_posix(): n
        for path in sorted((REPO / "eurosat_finetune").rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > LONG_MODULE
    }
    if long:
        terminalreporter.write_sep("-", f"modules over {LONG_MODULE} lines (review: do two concepts meet?)")
        for name, n in long.items():
            terminalreporter.write_line(f"{name}: {n} lines")
