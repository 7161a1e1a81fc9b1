"""Data is provided once however the processes are launched: torchrun ranks, independent jobs, a killed one.

Each test starts real processes from a fresh folder and reads the messages the package prints when it
writes data ("Writing a synthetic sample dataset", "Downloading", "Decoding ... once"): each must
appear exactly once, whichever process printed it.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, read_metrics, run_cli, zip_dataset
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from eurosat_finetune.data.patches.source import LOCK_NAME, DatasetSource
from eurosat_finetune.data.patches.synthetic import SAMPLE_TMP_NAME
from eurosat_finetune.tools.download import md5sum

pytestmark = pytest.mark.slow  # every test here starts several processes
TORCHRUN = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", "2"]
DDP_ON_CPU = ["--config", str(REPO / "configs" / "ddp.yaml"), "--trainer.accelerator=cpu", "--trainer.devices=2"]
QUICK = ["--trainer.max_epochs=1", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1"}


def run(command: list[str], cwd: Path, env: dict[str, str] = OFFLINE) -> str:
    """Run ``command`` to completion; return its stdout and stderr together, failing on a non-zero exit."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def test_torchrun_downloads_once(sample_root: Path, tmp_path: Path, serve_dir) -> None:
    """torchrun's two ranks: one downloads, extracts and decodes, the other waits and reads; one run folder.
    (The sample dataset, written instead of downloaded, is written once by processes started together in
    test_fits_started_together_in_one_folder_get_a_run_each: the same lock, taken by separate jobs.)"""
    archive = zip_dataset(sample_root, tmp_path / "served" / "EuroSAT_RGB.zip")
    configs = ["--config", str(REPO / "configs" / "fit.yaml"), "--config", str(REPO / "configs" / "tiny_vit.yaml")]
    download = [
        f"--data.download.url={serve_dir(archive.parent)}/EuroSAT_RGB.zip",
        f"--data.download.md5={md5sum(archive)}",
    ]
    work = tmp_path / "fresh"
    work.mkdir()
    command = [*TORCHRUN, "-m", "eurosat_finetune", "fit", *configs, *download, *DDP_ON_CPU, *QUICK]
    online = {
        k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"
    }  # it stops every download (tiny_vit is local)
    output = run([*command, "--data.loader.num_workers=0", "--data.loader.batch_size=16"], cwd=work, env=online)
    assert output.count("Downloading http://127.0.0.1") == 1, output[-4000:]
    assert output.count("Decoding 200 images once") == 1
    data = work / "data"
    assert (data / "EuroSAT_RGB.zip").read_bytes() == archive.read_bytes()
    assert len(list((data / "EuroSAT_RGB").rglob("*.jpg"))) == 200
    assert sorted(p.name for p in data.iterdir()) == [LOCK_NAME, "EuroSAT_RGB", "EuroSAT_RGB.zip"]
    runs = work / "runs" / "eurosat"
    assert [p.name for p in runs.iterdir()] == ["version_0"]  # rank 1 made no run folder of its own
    assert sorted(p.name for p in (runs / "version_0" / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert (runs / "version_0" / "huggingface" / "config.json").is_file()

    # the validation the two ranks logged (20 images, 10 a rank) is what one process gives for the checkpoint
    best = runs / "version_0" / "checkpoints" / "best.ckpt"
    single = ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp_path / 'single'}", f"--ckpt_path={best}"]
    run_cli(["validate", *configs, f"--data.root={data}", "--trainer.accelerator=cpu", *QUICK, *single])
    validated = read_metrics(next((tmp_path / "single").rglob("metrics.csv")).parent)
    events = EventAccumulator(str(runs / "version_0")).Reload()
    for key in ("val_loss", "val_acc", "val_macro_acc", "val_macro_f1"):
        (logged,) = events.Scalars(key)  # one epoch
        assert logged.value == pytest.approx(validated[key], rel=1e-6, abs=1e-7), key


PROVIDE = """
import sys
from pathlib import Path
from eurosat_finetune.data.patches.source import DatasetSource
source = DatasetSource(Path(sys.argv[1]), synthetic_images_per_class=int(sys.argv[2]))
print(source.image_folder())
"""


def test_a_process_killed_while_writing_blocks_nothing(tmp_path: Path) -> None:
    root = tmp_path / "data"
    writer = subprocess.Popen([sys.executable, "-c", PROVIDE, str(root), "5000"], env=OFFLINE)
    partial = root / SAMPLE_TMP_NAME
    deadline = time.monotonic() + 120
    while not list(partial.glob("*/*.jpg")) and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)  # as kill -9 or a node failure would: no cleanup
    writer.wait()
    assert list(partial.glob("*/*.jpg")) and (root / LOCK_NAME).is_file()  # a half-written sample, a lock file

    # the next to ask (in this process, which held nothing: as a new process would) takes the lock over
    assert DatasetSource(root, synthetic_images_per_class=20).image_folder() == root / "EuroSAT_RGB"
    assert len(list((root / "EuroSAT_RGB").rglob("*.jpg"))) == 200
    assert not partial.exists()


def test_fits_started_together_in_one_folder_get_a_run_each(tmp_path: Path) -> None:
    """A job array in one folder, on one fresh data root: each fit gets a version of its own, nothing is
    overwritten, and the data is written and decoded once, by one of them. (Two jobs: whatever a lock
    keeps from happening twice, it keeps from two; test_reliability.py claims run folders from 8 threads.)"""
    jobs_started = 2
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    logs = [tmp_path / f"job_{i}.log" for i in range(jobs_started)]
    command = [sys.executable, "-m", "eurosat_finetune", "fit", "--config", "configs/demo.yaml"]
    command += ["--data.synthetic_images_per_class=20", "--trainer.accelerator=cpu", *QUICK]
    jobs = []
    for log in logs:
        with open(log, "w") as out:
            jobs.append(subprocess.Popen(command, cwd=tmp_path, env=OFFLINE, stdout=out, stderr=subprocess.STDOUT))
    for job, log in zip(jobs, logs, strict=True):
        assert job.wait(timeout=600) == 0, log.read_text()[-4000:]
    output = "".join(log.read_text() for log in logs)
    assert output.count("Writing a synthetic sample dataset") == 1, output[-4000:]
    assert output.count("Decoding 200 images once") == 1
    data = tmp_path / "data" / "demo"
    assert len(list((data / "EuroSAT_RGB").rglob("*.jpg"))) == 200
    assert sorted(p.name for p in data.iterdir()) == [LOCK_NAME, "EuroSAT_RGB"]  # no temporary folder left
    runs = tmp_path / "runs" / "demo"
    assert sorted(p.name for p in runs.iterdir()) == [f"version_{i}" for i in range(jobs_started)]
    for run in runs.iterdir():
        assert (run / "config.yaml").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
        assert (run / "huggingface" / "config.json").is_file()
    finished = sorted(line.split("Run folder: ")[1] for line in output.splitlines() if "Run folder: " in line)
    assert finished == [f"runs/demo/version_{i}" for i in range(jobs_started)]
