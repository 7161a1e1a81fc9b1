"""A decode cache cut short (a copy onto a full disk) is built again with one warning, not a traceback."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST, TINY_VIT, run_cli

from eurosat_finetune.data.patches.decode_cache import CACHE_PREFIX, damage_of, status_path

FIT = ["fit", *FAST, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
FIT += [
    "--model.network.pretrained=null",
    f"--model.network.architecture={json.dumps(TINY_VIT)}",
    "--export.after_fit=false",
]


def cut(path: Path, keep: float) -> None:
    """Cut ``path`` to ``keep`` of its size, as a copy onto a full disk leaves it."""
    with path.open("r+b") as file:
        file.truncate(int(path.stat().st_size * keep))


def cache_in(data: Path) -> Path:
    """The one decode cache beside the images in ``data`` (not its status file)."""
    [cache] = [p for p in (data / "EuroSAT_RGB").glob(f"{CACHE_PREFIX}*.npy") if not p.name.endswith(".status.npy")]
    return cache


@pytest.fixture(scope="module")
def built(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample data whose decode cache one ``eurosat fit`` built (shared: each case copies it)."""
    data = tmp_path_factory.mktemp("built")
    shutil.copytree(sample_root / "EuroSAT_RGB", data / "EuroSAT_RGB", ignore=shutil.ignore_patterns(".*"))
    logs = tmp_path_factory.mktemp("built-logs")
    run_cli([*FIT, f"--data.root={data}", "--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={logs}"])
    return data


@pytest.mark.parametrize(
    "which, keep, damage",
    [
        ("cache", 0.5, r"{cache} has \d[\d,]* bytes where its header promises \d[\d,]*\); building it again$"),
        pytest.param(
            "status",
            0.5,
            r"{status}: Failed to read all data for array.*\); building it again$",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "cache",
            0,
            r"{cache}: EOF: reading magic string, expected 8 bytes got 0\); building it again$",
            marks=pytest.mark.slow,
        ),  # (the quick suite has the half-size cache)
        pytest.param("status", 0, r"{status}: No data left in file\); building it again$", marks=pytest.mark.slow),
    ],
)
def test_a_truncated_cache_is_built_again_with_one_warning(
    which: str, keep: float, damage: str, built: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "data"
    shutil.copytree(built, data)
    logs = ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp_path / 'logs'}"]
    cache = cache_in(data)
    intact = np.load(cache).copy()
    assert damage_of(cache, 200) is None  # each case starts from an intact copy
    cut(cache if which == "cache" else status_path(cache), keep)
    assert damage_of(cache, 200) is not None
    capsys.readouterr()

    run_cli([*FIT, f"--data.root={data}", *logs])  # trains, after building the cache again
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "damaged" in line]
    assert len(warnings) == 1, err[-3000:]
    assert warnings[0].startswith(f"WARNING: The decode cache {cache} is damaged (")
    names = {"cache": re.escape(cache.name), "status": re.escape(status_path(cache).name)}
    assert re.search(damage.format(**names), warnings[0]), warnings[0]
    assert damage_of(cache, 200) is None and np.array_equal(np.load(cache), intact)
    assert (tmp_path / "logs" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_a_cut_status_file_is_found_damaged(built: Path, tmp_path: Path) -> None:
    """The status file's check, without a fit (the full suite rebuilds it in ``eurosat fit`` above)."""
    data = shutil.copytree(built, tmp_path / "data")
    cache = cache_in(data)
    cut(status_path(cache), 0.5)
    damage = damage_of(cache, 200)
    expected = f"{status_path(cache).name}: Failed to read all data for array"
    assert damage is not None and damage.startswith(expected), damage
