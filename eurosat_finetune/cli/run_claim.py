"""Each run gets a version folder of its own, also when several start together in one folder (a SLURM
job array, a sweep): Lightning's loggers pick ``version_N`` by listing the folders there, so two runs
started at the same moment both pick the same N. Here the folder is made before the loggers exist,
with ``mkdir``, which the filesystem lets only one process do; who fails takes the next N.

Only the process of global rank 0 claims: under DDP the others use the folder Lightning broadcasts.
The saved ``config.yaml`` keeps ``version: null``, so running it again makes a new run. A command that
stops with a user error before writing any result removes the folders it made.
"""

from fnmatch import fnmatch
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.utilities import rank_zero_only

from eurosat_finetune.cli.resume import logger_root, logger_specs

MADE: list[Path] = []  # the folders this command made (claimed versions and their missing parents), newest last
# what every run writes as it starts, before any work: a run folder of these alone holds no result
WRITTEN_AT_START = ("config.yaml", "hparams.yaml", "events.out.tfevents.*")


def claim_version(root: Path) -> int | None:
    """The next free ``version_N`` under ``root``, made on disk, never one another process made; None
    if ``root`` cannot be written (the CLI's checks then say so in one line)."""
    missing = [p for p in (root, *root.parents) if not p.exists()]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    MADE.extend(reversed(missing))
    taken = [int(d.name[8:]) for d in root.glob("version_*") if d.name[8:].isdigit()]
    version = max(taken, default=-1) + 1
    while True:
        try:
            (root / f"version_{version}").mkdir()
        except FileExistsError:  # another run made it first
            version += 1
            continue
        except OSError:
            return None
        MADE.append(root / f"version_{version}")
        return version


def claim_run_folders(trainer: Namespace) -> list[Namespace]:
    """Give every logger of ``trainer`` that chooses its own version a folder claimed on disk; return
    their specs (see :func:`unclaimed_in_config`)."""
    MADE.clear()  # a new command: what earlier ones made is theirs
    if rank_zero_only.rank != 0:
        return []
    claimed = []
    for spec in logger_specs(trainer):
        root = logger_root(spec)
        if root is not None and spec.init_args.get("version") is None:
            spec.init_args.version = claim_version(root)
            claimed += [spec] if spec.init_args.version is not None else []
    return claimed


def unclaimed_in_config(specs: list[Namespace]) -> None:
    """Once the loggers hold their versions: the config to be saved says ``version: null`` again."""
    for spec in specs:
        spec.init_args.version = None


def holds_no_result(folder: Path) -> bool:
    """Whether ``folder`` holds only what a run writes as it starts (no checkpoint, report, map or export)."""
    return all(
        entry.is_file() and any(fnmatch(entry.name, name) for name in WRITTEN_AT_START) for entry in folder.iterdir()
    )


def release_unused_claims() -> None:
    """Remove the folders the command made that hold no result (it was refused before any work, or stopped
    before writing one): a refused command leaves no run folder behind, and the next run takes its number."""
    while MADE:
        folder = MADE.pop()
        if folder.is_dir() and holds_no_result(folder):
            for entry in folder.iterdir():
                entry.unlink()
            folder.rmdir()
