"""Read-only datasets: the decode cache goes where it can be written, and the user is told where.

Run for real, in subprocesses: as a user without write permission on the dataset (root with the
capabilities that override file permissions dropped, via ``setpriv``: the kernel then checks the
permission bits as for any user), and on a read-only bind mount (writes fail with EROFS, in a user
namespace made by ``unshare``). Each is skipped where the machine cannot do it. A test's commands run
one after the other in one such process (a process costs 10 s of imports); the data's owner runs in
this one.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import TINY_VIT, run_cli

pytestmark = pytest.mark.slow  # every test here runs the CLI in a subprocess
NOBODY = 65534
WITHOUT_OVERRIDES = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]
READ_ONLY_MOUNT = ["unshare", "--mount", "--map-root-user", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"']
FIT = ["fit", "--trainer.accelerator=cpu", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]
FIT += ["--trainer.enable_progress_bar=false", "--data.loader.num_workers=0", "--data.loader.batch_size=16"]
FIT += [
    "--model.network.pretrained=null",
    f"--model.network.architecture={json.dumps(TINY_VIT)}",
    "--export.after_fit=false",
]


def copy_of_images(sample_root: Path, folder: Path) -> Path:
    """The sample images, without their decode cache, in ``folder/data``."""
    data = folder / "data"
    shutil.copytree(sample_root / "EuroSAT_RGB", data / "EuroSAT_RGB", ignore=shutil.ignore_patterns(".*"))
    return data


def not_writable(folder: Path) -> Path:
    """Give ``folder`` (made if missing) to user nobody and take away all write permission."""
    folder.mkdir(exist_ok=True)
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, NOBODY, NOBODY)
        path.chmod(0o555 if path.is_dir() else 0o444)
    return folder


RUNS = """
# eurosat once per entry of the JSON list argv[1] (its arguments and environment variables), one after the
# other in this process; each run's exit status and what it wrote to file descriptor 2 into argv[2]/<n>.json
import json, os, sys
from eurosat_finetune.cli import main

for n, run in enumerate(json.loads(sys.argv[1])):
    os.environ.update(run["env"])
    stderr = os.path.join(sys.argv[2], f"{n}.stderr")
    sys.stderr.flush()
    kept = os.dup(2)
    with open(stderr, "w") as file:
        os.dup2(file.fileno(), 2)
    try:
        main(run["args"])
        status = 0
    except SystemExit as exit:
        status = exit.code or 0
    finally:
        sys.stderr.flush()
        os.dup2(kept, 2)
        os.close(kept)
    with open(os.path.join(sys.argv[2], f"{n}.json"), "w") as file:
        json.dump({"returncode": status, "stderr": open(stderr).read()}, file)
"""


def eurosat(prefix: list[str], runs: list[tuple[list[str], dict[str, str]]], folder: Path) -> list[SimpleNamespace]:
    """``eurosat <args>`` with ``env`` set, for each of ``runs`` in turn, in one process started under
    ``prefix``; each run's ``returncode`` and ``stderr``."""
    folder.mkdir()
    spec = json.dumps([{"args": args, "env": env} for args, env in runs])
    result = subprocess.run([*prefix, sys.executable, "-c", RUNS, spec, str(folder)], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return [SimpleNamespace(**json.loads((folder / f"{n}.json").read_text())) for n in range(len(runs))]


def moved_message(data: Path, cache_home: Path) -> str:
    return f"{data / 'EuroSAT_RGB'} is read-only; the decode cache goes to {cache_home / 'eurosat-finetune'}"


def caches_in(folder: Path) -> list[Path]:
    return list(folder.glob(".decoded-uint8-*.npy"))  # a cache and its status file


def works(command: list[str]) -> bool:
    return shutil.which(command[0]) is not None and subprocess.run(command, capture_output=True).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to drop its permission overrides with setpriv")
def test_user_without_write_permission(
    sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    data = copy_of_images(sample_root, tmp_path)
    cache_home, elsewhere = tmp_path / "cache-home", tmp_path / "cache-home-2"
    logs = ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp_path / 'logs'}"]
    args = [*FIT, f"--data.root={data}", *logs]
    env = {"XDG_CACHE_HOME": str(cache_home), "HOME": os.environ.get("HOME", "/root")}

    # a cache built beside the data by someone who could write there serves everyone: the owner (root, in
    # this process) builds one beside a second copy of the images, which the user then reads
    owned = copy_of_images(sample_root, tmp_path / "owned")
    monkeypatch.setenv("XDG_CACHE_HOME", str(elsewhere))
    run_cli([*FIT, f"--data.root={owned}", *logs], capsys)
    assert len(caches_in(owned / "EuroSAT_RGB")) == 2
    not_writable(owned)
    not_writable(data)
    before = sorted(data.rglob("*"))
    assert not works([*WITHOUT_OVERRIDES, "touch", str(data / "probe")])

    # no XDG_CACHE_HOME and a home folder it cannot write either: it says it decodes every epoch
    nowhere = {"XDG_CACHE_HOME": "", "HOME": str(not_writable(tmp_path / "home"))}
    from_owner = {"XDG_CACHE_HOME": str(elsewhere), "HOME": env["HOME"]}
    first, second, third, fourth = eurosat(
        WITHOUT_OVERRIDES,
        [(args, env), (args, env), (args, nowhere), ([*FIT, f"--data.root={owned}", *logs], from_owner)],
        tmp_path / "runs",
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert moved_message(data, cache_home) in first.stderr
    assert len(caches_in(cache_home / "eurosat-finetune")) == 2
    assert second.returncode == 0 and "Decoding" not in second.stderr  # found there again
    assert third.returncode == 0, third.stderr[-3000:]
    assert "decoding every image every epoch instead (slower). Set data.cache.dir" in third.stderr

    assert sorted(data.rglob("*")) == before  # nothing was written into the dataset

    assert fourth.returncode == 0, fourth.stderr[-3000:]
    assert "Decoding" not in fourth.stderr and "read-only" not in fourth.stderr
    assert not (elsewhere / "eurosat-finetune").exists()  # the user read the owner's cache and made none


def test_read_only_mount(sample_root: Path, tmp_path: Path) -> None:
    """The dataset on a read-only filesystem: writes fail with EROFS, whoever the user is."""
    data = copy_of_images(sample_root, tmp_path)
    if not works([*READ_ONLY_MOUNT, str(data), "sh", "-c", f"! touch {data / 'probe'} 2>/dev/null"]):
        pytest.skip("cannot bind-mount read-only here (unshare missing or user namespaces disabled)")
    before = sorted(data.rglob("*"))
    cache_home = tmp_path / "cache-home"
    mounted = [*READ_ONLY_MOUNT, str(data)]
    logs = ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp_path / 'logs'}"]
    args = [*FIT, f"--data.root={data}", *logs]
    env = {"XDG_CACHE_HOME": str(cache_home)}

    result, refused, sample = eurosat(
        mounted,
        [
            (args, env),
            ([*args, f"--data.cache.dir={data / 'cache'}"], env),
            ([*args, f"--data.root={data / 'new'}", "--data.synthetic_images_per_class=5"], env),
        ],
        tmp_path / "runs",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert moved_message(data, cache_home) in result.stderr
    assert len(caches_in(cache_home / "eurosat-finetune")) == 2
    assert sorted(data.rglob("*")) == before

    # a cache_dir given on the read-only data is refused before any image is decoded (the same check as for a folder
    # the user may not write to: creating a file there is tried)
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[-1] == (
        f"eurosat: error: cannot write the decode cache to data.cache.dir='{data / 'cache'}'; give a writable "
        "folder (or leave it unset), or set data.cache.enabled=false to decode images every epoch"
    )
    # data that must first be written (here the sample dataset) onto a read-only mount: one line too
    assert sample.returncode == 2
    assert sample.stderr.splitlines()[-1] == (
        f"eurosat: error: cannot write to data.root='{data / 'new'}' (Read-only file system); point data.root "
        "at a writable folder to download or write the dataset there"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to drop its permission overrides with setpriv")
def test_a_damaged_cache_beside_read_only_data_is_one_line(
    sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Built by the data's owner, then cut short (a copy onto a full disk): a user who cannot replace it is
    told which files to delete, or where else to build it."""
    data = copy_of_images(sample_root, tmp_path)
    logs = ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp_path / 'logs'}"]
    args = [*FIT, f"--data.root={data}", *logs]
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache-home")}
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
    run_cli(args, capsys)  # the owner, in this process
    [cache] = [path for path in caches_in(data / "EuroSAT_RGB") if not path.name.endswith(".status.npy")]
    size = cache.stat().st_size
    with cache.open("r+b") as file:
        file.truncate(size // 2)
    not_writable(data)

    refused, elsewhere = eurosat(
        WITHOUT_OVERRIDES, [(args, env), ([*args, f"--data.cache.dir={tmp_path / 'cache'}"], env)], tmp_path / "runs"
    )
    assert refused.returncode == 2
    status = cache.name.removesuffix(".npy") + ".status.npy"
    assert refused.stderr.splitlines()[-1] == (
        f"eurosat: error: the decode cache {cache} is damaged ({cache.name} has {size // 2:,} bytes where its "
        f"header promises {size:,}) and its folder is read-only: delete it and {status} there, or set "
        "data.cache.dir to a writable folder"
    )
    assert elsewhere.returncode == 0, elsewhere.stderr[-3000:]
    assert cache.stat().st_size == size // 2  # the owner's file is left as it was
