"""What a user sees of a download, an extraction and the decode cache being built: tqdm's bars (bytes
and a total) on a terminal, a few log lines when the output goes to a file.

A real ``eurosat fit``, its output on a pseudo-terminal (in a subprocess) or not (in this process),
fetching the sample dataset from 127.0.0.1. ``TQDM_DELAY=0`` shows these steps, which on a dataset this small end
well within the 2 s after which a step shows its progress.
"""

import fcntl
import json
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
import zipfile
from pathlib import Path

import pytest
from conftest import TINY_VIT, run_cli, zip_dataset
from tqdm import tqdm

from eurosat_finetune.tools import progress

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def fit_command(root: Path, url: str, logs: Path) -> list[str]:
    return [sys.executable, "-m", "eurosat_finetune", "fit", "--trainer.accelerator=cpu", "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--data.loader.num_workers=0", "--data.loader.batch_size=16",
            f"--data.root={root}", "--data.download.enabled=true", f"--data.download.url={url}",
            "--data.download.md5=null",
            "--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}",
            "--export.after_fit=false", "--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={logs}"]  # fmt: skip


def environment() -> dict[str, str]:
    """Shows short steps; HF_HUB_OFFLINE would stop the download (it goes through huggingface_hub)."""
    return {**{k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}, "TQDM_DELAY": "0"}


def on_a_terminal(command: list[str]) -> str:
    """Run ``command`` with its stdout and stderr on a pseudo-terminal; return what it wrote there."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 40 rows of 120 columns
    process = subprocess.Popen(command, stdin=terminal, stdout=terminal, stderr=terminal, env=environment())
    os.close(terminal)
    output, deadline = bytearray(), time.monotonic() + 300
    while time.monotonic() < deadline:  # a run that hangs, or leaves a process holding the terminal, fails
        if not select.select([controller], [], [], 1)[0]:
            if process.poll() is not None:
                break  # it ended and wrote nothing more for a second
            continue
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the process ended and closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    try:
        status = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert status == 0, output.decode(errors="replace")[-3000:]
    return ANSI.sub("", output.decode(errors="replace"))


@pytest.fixture
def served(sample_root: Path, tmp_path: Path, serve_dir) -> tuple[str, int, int]:
    """The sample dataset's zip on 127.0.0.1: its url, size in bytes and number of files."""
    archive = zip_dataset(sample_root, tmp_path / "served" / "EuroSAT_RGB.zip")
    files = sum(not member.is_dir() for member in zipfile.ZipFile(archive).infolist())
    return f"{serve_dir(archive.parent)}/EuroSAT_RGB.zip", archive.stat().st_size, files


@pytest.mark.slow  # a fresh Python process
def test_a_terminal_shows_bars_with_counts_and_totals(served: tuple[str, int, int], tmp_path: Path) -> None:
    url, size, files = served
    output = on_a_terminal(fit_command(tmp_path / "data", url, tmp_path / "logs"))
    kb = f"{size / 1000:.0f}k"
    # tqdm redraws each bar in place (\r): its last state is the finished one
    states = [state.strip() for state in re.split(r"[\r\n]", output) if "|" in state]
    assert any(re.fullmatch(rf"EuroSAT_RGB\.zip: 100%\|[^|]+\| {kb}/{kb} \[[^]]+B/s\]", s) for s in states), output
    extracted = rf"Extracting EuroSAT_RGB\.zip: 100%\|[^|]+\| {files}/{files} \[[^]]+ files/s\]"
    assert any(re.fullmatch(extracted, s) for s in states)
    assert any(re.fullmatch(r"Decoding 200 images: 100%\|[^|]+\| 200/200 \[[^]]+ images/s\]", s) for s in states)
    assert "INFO: EuroSAT_RGB.zip" not in output  # bars, not log lines


@pytest.mark.slow  # an end-to-end run: the full suite
def test_a_log_file_gets_a_few_lines_per_step(
    served: tuple[str, int, int], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: what decides is whether stderr is a terminal (here pytest's capture, as a pipe or a
    file is not), which the terminal's own test needs a process for."""
    url, size, files = served
    monkeypatch.setenv("TQDM_DELAY", "0")
    run_cli(
        fit_command(tmp_path / "data", url, tmp_path / "logs")[3:]
    )  # the arguments after `python -m eurosat_finetune`
    stderr = capsys.readouterr().err
    assert "\r" not in stderr
    lines = stderr.splitlines()
    for step, total in [("EuroSAT_RGB.zip", f"{size / 1000:.0f}kB"), ("Extracting EuroSAT_RGB.zip", f"{files} files"),
                        ("Decoding 200 images", "200 images")]:  # fmt: skip
        progress = [line for line in lines if line.startswith(f"INFO: {step}: ")]
        assert 1 <= len(progress) <= 3, lines
        assert re.match(rf"INFO: {re.escape(step)}: 100% \(\S+ of {total}, [^,]+/s, 00:00 left\)$", progress[-1]), (
            progress
        )


@pytest.mark.slow  # an end-to-end run: the full suite
def test_a_logged_step_says_when_it_is_slow_and_when_it_ends(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the package's INFO messages go to a log: nothing for a step shorter than the delay; the first
    line once it has taken the delay, the next after LOG_EVERY_S, and one at the end."""
    caplog.set_level(logging.INFO, logger="eurosat_finetune")
    monkeypatch.setenv("TQDM_DELAY", "0.2")
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.5)
    with progress.progress_bar(10, "Short", " files") as bar:
        bar.update(10)
    assert caplog.messages == []
    with progress.progress_bar(10, "Slow", " files") as bar:
        for _ in range(10):
            time.sleep(0.1)
            bar.update()
    assert len(caplog.messages) == 3, caplog.messages  # after 0.2 s, after 0.7 s, at the end
    assert caplog.messages[0].startswith("Slow: 20% (2 of 10 files, ")
    assert re.fullmatch(r"Slow: 100% \(10 of 10 files, [\d.]+ files/s, 00:00 left\)", caplog.messages[-1])
    caplog.clear()
    with progress.progress_bar(10, "Between", " files") as bar:  # past the delay, done before a line was due
        time.sleep(0.3)
        bar.update(10)
    assert len(caplog.messages) == 1 and caplog.messages[0].startswith("Between: 100% (10 of 10 files, ")


def test_without_a_log_to_write_to_it_is_tqdms_bar(caplog: pytest.LogCaptureFixture) -> None:
    """A notebook or script that shows no INFO messages of the package gets tqdm's own bar (a widget in a
    notebook), not log lines nobody sees."""
    caplog.set_level(logging.WARNING, logger="eurosat_finetune")
    with progress.progress_bar(10, "Step", " files") as bar:
        assert type(bar) is not progress.LoggedProgress and isinstance(bar, tqdm)
    caplog.set_level(logging.INFO, logger="eurosat_finetune")
    with progress.progress_bar(10, "Step", " files") as bar:
        assert type(bar) is progress.LoggedProgress
