"""Checks the CLI makes before any work starts: the ``--ckpt_path``, the checkpoint callbacks, the maps'
reference points, and every output of the run, so that a bad input fails in one line and nothing a user had
is overwritten."""

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from eurosat_finetune.errors import BandError, CheckpointError, ConfigError, OutputError
from eurosat_finetune.outputs.land_cover_maps import LandCoverMaps
from eurosat_finetune.outputs.run_folder import RunFolderCallback, RunOutput

# --ckpt_path values that Lightning resolves itself rather than reading a file.
SPECIAL_CKPT_PATHS = frozenset({"last", "best", "hpc", "registry"})

# Files a run leaves in its run folder; a new fit must not write among them.
RUN_FILES = ("config.yaml", "hparams.yaml", "metrics.csv", "events.out.tfevents.*", "checkpoints/*.ckpt")


def check_checkpoint(path: str) -> dict[str, Any]:
    """Fail early, in one line, on a ``--ckpt_path`` that is missing or not a Lightning checkpoint;
    return its hyperparameters."""
    hint = "give a .ckpt file written by `eurosat fit` (e.g. runs/eurosat/version_0/checkpoints/best.ckpt)"
    if not Path(path).is_file():
        raise CheckpointError(f"--ckpt_path {path}: no such file; {hint}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises many types for files that are not checkpoints
        raise CheckpointError(f"--ckpt_path {path} is not a checkpoint ({type(err).__name__}); {hint}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"--ckpt_path {path} holds no model state_dict; {hint}")
    return dict(checkpoint.get("hyper_parameters", {}))


def check_writable(folder: Path, option: str) -> None:
    """Fail before any work if ``folder`` cannot be created or written to; leave no folder behind."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise OutputError(
            f"cannot write to {folder} ({err.strerror or err}); set {option} to a writable folder"
        ) from None
    finally:
        for created in missing:
            with contextlib.suppress(OSError):  # another process may have written into it meanwhile
                created.rmdir()


def check_checkpoint_callbacks(trainer: Trainer, built_in: list[ModelCheckpoint]) -> list[ModelCheckpoint]:
    """Only the built-in best and last checkpoint groups may write checkpoints; return them."""
    checkpoints = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    if any(all(c is not ours for ours in built_in) for c in checkpoints):
        raise ConfigError(
            "trainer.callbacks holds a ModelCheckpoint besides the built-in ones; configure those with "
            "--checkpoint.* (best.ckpt) and --last_checkpoint.* (last.ckpt), and remove ModelCheckpoint "
            "from trainer.callbacks"
        )
    if built_in[0].save_last:
        raise ConfigError(
            "checkpoint.save_last: last.ckpt is written every epoch by the last_checkpoint group; "
            "leave checkpoint.save_last unset (configure last.ckpt with --last_checkpoint.*)"
        )
    return checkpoints


def check_run_folder(folder: Path, subcommand: str, continuing: bool) -> None:
    """A new fit gets a folder of its own: refuse one that holds another run's files."""
    check_writable(folder, "trainer.logger.init_args.save_dir (or trainer.default_root_dir)")
    earlier = [p for pattern in RUN_FILES for p in folder.glob(pattern)]
    if subcommand == "fit" and earlier and not continuing:
        raise OutputError(
            f"{folder} already holds a run ({earlier[0].name}); leave trainer.logger.init_args.version "
            "unset so each run gets a new version folder, or choose another folder"
        )


def check_checkpoint_folders(checkpoints: list[ModelCheckpoint], subcommand: str, resuming: bool) -> None:
    """A new fit must not write among an earlier run's checkpoints."""
    for callback in checkpoints:
        if callback.dirpath is None:
            continue
        dirpath = Path(callback.dirpath)
        check_writable(dirpath, "--checkpoint.dirpath")
        if subcommand == "fit" and not resuming and any(dirpath.glob("*.ckpt")):
            raise OutputError(
                f"{dirpath} already holds checkpoints of an earlier run; choose another "
                "--checkpoint.dirpath (or leave it unset), or resume with --ckpt_path"
            )


def run_outputs(trainer: Trainer, folder: Path, subcommand: str) -> list[RunOutput]:
    """What the run-folder callbacks write in ``subcommand`` for a run in ``folder``."""
    writers = [c for c in trainer.callbacks if isinstance(c, RunFolderCallback)]
    return [output for callback in writers for output in callback.outputs(folder, subcommand)]


def check_outputs(trainer: Trainer, folder: Path, subcommand: str) -> None:
    """Each run-folder callback's outputs for ``subcommand`` must not exist yet."""
    for output in run_outputs(trainer, folder, subcommand):
        output.refuse_existing()


def check_bands(saved: dict[str, list] | None, data_bands: list[str] | None) -> None:
    """Refuse a checkpoint trained on other bands than the data has (RGB being no bands by name)."""
    trained = saved["names"] if saved else None
    if trained != data_bands:
        raise BandError(
            f"the checkpoint was trained on bands {trained or 'RGB'} but the data gives {data_bands or 'RGB'}; "
            "evaluate it on data with the checkpoint's bands (leave data.bands out: it then takes them)"
        )


def check_reference_points(trainer: Trainer, class_names: list[str] | None, subcommand: str) -> None:
    """Read the maps' reference points (``--maps.reference_points``) against the model's classes now, so a
    missing file, column or class is one line before any scene is opened."""
    if subcommand != "predict" or not class_names:
        return
    for callback in trainer.callbacks:
        if isinstance(callback, LandCoverMaps):
            callback.reference(list(class_names))
