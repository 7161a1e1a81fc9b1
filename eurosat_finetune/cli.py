"""The ``eurosat`` command: LightningCLI over :class:`ViTClassifier` and :class:`EuroSATDataModule`."""

import sys
import tempfile
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only

from eurosat_finetune.callbacks import EvaluationReport, HuggingFaceExport, PredictionWriter, ValidationSamples
from eurosat_finetune.data import EuroSATDataModule
from eurosat_finetune.errors import CheckpointError, OutputError, UserError
from eurosat_finetune.model import ViTClassifier

# --ckpt_path values that Lightning resolves itself rather than reading a file.
SPECIAL_CKPT_PATHS = frozenset({"last", "best", "hpc", "registry"})

# Files a run leaves in its log dir; a new fit must not write among them.
RUN_FILES = ("config.yaml", "hparams.yaml", "metrics.csv", "events.out.tfevents.*", "checkpoints/*.ckpt")


def check_checkpoint(path: str) -> None:
    """Fail early, in one line, on a ``--ckpt_path`` that is missing or not a Lightning checkpoint."""
    hint = "give a .ckpt file written by `eurosat fit` (e.g. runs/eurosat/version_0/checkpoints/best.ckpt)"
    if not Path(path).is_file():
        raise CheckpointError(f"--ckpt_path {path}: no such file; {hint}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises many types for files that are not checkpoints
        raise CheckpointError(f"--ckpt_path {path} is not a checkpoint ({type(err).__name__}); {hint}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"--ckpt_path {path} holds no model state_dict; {hint}")


def check_writable(folder: Path, option: str) -> None:
    """Fail before any work if ``folder`` cannot be created or written to."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise OutputError(
            f"cannot write to {folder} ({err.strerror or err}); set {option} to a writable folder"
        ) from None


class EuroSATCLI(LightningCLI):
    """LightningCLI whose model takes its class names from the data, so they are configured once,
    whose runs always report, sample, predict to CSV and export (each group configurable), and which
    checks its inputs and outputs before any work starts."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.class_names", "model.class_names", apply_on="instantiate")
        parser.add_lightning_class_args(EvaluationReport, "report")
        parser.add_lightning_class_args(ValidationSamples, "val_samples")
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.add_lightning_class_args(HuggingFaceExport, "export")

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in SPECIAL_CKPT_PATHS:
            check_checkpoint(ckpt_path)

    def after_instantiate_classes(self) -> None:
        if self.subcommand is None or rank_zero_only.rank != 0:
            return
        log_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        check_writable(log_dir, "trainer.logger.init_args.save_dir (or trainer.default_root_dir)")
        earlier = [p for pattern in RUN_FILES for p in log_dir.glob(pattern)]
        if self.subcommand == "fit" and earlier:
            raise OutputError(
                f"{log_dir} already holds a run ({earlier[0].name}); leave trainer.logger.init_args.version "
                "unset so each run gets a new version folder, or choose another folder"
            )
        resuming = self.config[self.subcommand].get("ckpt_path") is not None
        for callback in self.trainer.callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is not None:
                dirpath = Path(callback.dirpath)
                check_writable(dirpath, "the ModelCheckpoint's dirpath")
                if self.subcommand == "fit" and not resuming and any(dirpath.glob("*.ckpt")):
                    raise OutputError(
                        f"{dirpath} already holds checkpoints of an earlier run; choose another "
                        "ModelCheckpoint dirpath (or leave it unset), or resume with --ckpt_path"
                    )


def build_cli(args: ArgsType = None, run: bool = True) -> EuroSATCLI:
    """Parse ``args`` (default: ``sys.argv[1:]``) and instantiate; with ``run`` also run the subcommand."""
    return EuroSATCLI(ViTClassifier, EuroSATDataModule, args=args, run=run, parser_kwargs={"prog": "eurosat"})


def main(args: ArgsType = None) -> None:
    """Run ``eurosat <subcommand> ...``; ``args`` replaces ``sys.argv[1:]`` (for tests and notebooks).

    Errors the user can fix end the command with a one-line message and exit status 2.
    """
    try:
        build_cli(args)
    except UserError as err:
        sys.stderr.write(f"eurosat: error: {one_line(err)}\n")
        raise SystemExit(2) from None


def one_line(err: UserError) -> str:
    """The error's own message, also when a DataLoader worker re-raised it with its traceback attached."""
    message = str(err).strip().splitlines()[-1]
    prefix = f"{type(err).__module__}.{type(err).__name__}: "
    return message.removeprefix(prefix)
