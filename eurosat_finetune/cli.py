"""The ``eurosat`` command: LightningCLI over :class:`ImageClassifier` and :class:`EuroSATDataModule`."""

import contextlib
import importlib.metadata
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only

from eurosat_finetune.datamodule import EuroSATDataModule
from eurosat_finetune.errors import CheckpointError, ConfigError, OutputError, UserError
from eurosat_finetune.export import HuggingFaceExport
from eurosat_finetune.maps import LandCoverMaps
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.predictions import PredictionWriter
from eurosat_finetune.report import EvaluationReport
from eurosat_finetune.resume import continue_resumed_run, keep_earlier_metrics, resume_number, resumed_config_name
from eurosat_finetune.runs import RunFolderCallback, run_folder
from eurosat_finetune.samples import ValidationSamples
from eurosat_finetune.summary import RunRecord, closing_summary, log_run_metrics, record_of
from eurosat_finetune.throughput import TrainingThroughput

# --ckpt_path values that Lightning resolves itself rather than reading a file.
SPECIAL_CKPT_PATHS = frozenset({"last", "best", "hpc", "registry"})

# Model options chosen when evaluating, not when training: the command's value wins over the checkpoint's.
EVALUATION_OPTIONS = ("tta",)

# The built-in ModelCheckpoint groups: best.ckpt and last.ckpt.
CHECKPOINT_KEYS = ("checkpoint", "last_checkpoint")

# Files a run leaves in its run folder; a new fit must not write among them.
RUN_FILES = ("config.yaml", "hparams.yaml", "metrics.csv", "events.out.tfevents.*", "checkpoints/*.ckpt")


def version() -> str:
    """The installed package's version (pyproject.toml's)."""
    return importlib.metadata.version("eurosat-finetune")


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


class EuroSATCLI(LightningCLI):
    """LightningCLI whose model takes its class names from the data, so they are configured once;
    whose runs always keep the best and last checkpoints, report, sample, predict to CSV and export
    (each group configurable); and which checks its inputs and outputs before any work starts."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.class_names", "model.class_names", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.link_arguments("checkpoint.dirpath", "last_checkpoint.dirpath")  # one folder for best and last
        # defined once here, not in every config: keep the best (by val_loss) and the last weights. The
        # last get a callback of their own: since Lightning 2.6, save_last=true writes last.ckpt only
        # at epochs that also saved a top-k checkpoint, so after the best epoch it is a copy of best.ckpt.
        parser.set_defaults(
            {
                "checkpoint.monitor": "val_loss",
                "checkpoint.mode": "min",
                "checkpoint.filename": "best",
                "last_checkpoint.filename": "last",
                "last_checkpoint.enable_version_counter": False,  # overwrite last.ckpt, not last-v1.ckpt
            }
        )
        parser.add_lightning_class_args(EvaluationReport, "report")
        parser.add_lightning_class_args(ValidationSamples, "val_samples")
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.add_lightning_class_args(HuggingFaceExport, "export")
        parser.add_lightning_class_args(LandCoverMaps, "maps")
        parser.add_lightning_class_args(TrainingThroughput, "throughput")

    def setup_parser(
        self, add_subcommands: bool, main_kwargs: dict[str, Any], subparser_kwargs: dict[str, Any]
    ) -> None:
        super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
        self.parser.add_argument("--version", action="version", version=f"eurosat-finetune {version()}")

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        self.checkpoint_hparams: dict[str, Any] = {}
        if ckpt_path and ckpt_path not in SPECIAL_CKPT_PATHS:
            self.checkpoint_hparams = check_checkpoint(ckpt_path)

    def _parse_ckpt_path(self) -> None:
        """LightningCLI replaces the model's config with the hyperparameters a --ckpt_path holds; keep the
        command's evaluation options (``--model.tta true`` on a checkpoint trained without it)."""
        subcommand = self.config.get("subcommand")
        chosen = {key: self.config[subcommand].model.get(key) for key in EVALUATION_OPTIONS} if subcommand else {}
        super()._parse_ckpt_path()
        for key, value in chosen.items():
            self.config[subcommand].model[key] = value

    def before_instantiate_classes(self) -> None:
        """A fit resumed from a run's own checkpoint continues that run (see :mod:`.resume`). Predict
        returns nothing by default: its writers stream results to files, and kept in memory as well
        they would grow with the scenes mapped."""
        if self.subcommand == "predict" and self.config.predict.get("return_predictions") is None:
            self.config.predict.return_predictions = False
        self.resumed_run = continue_resumed_run(self.config.fit) if self.subcommand == "fit" else None
        if self.resumed_run is not None:
            self.resume_number = resume_number(self.resumed_run)
            config_name = resumed_config_name(self.resumed_run, self.resume_number)
            self.save_config_kwargs = {**self.save_config_kwargs, "config_filename": config_name}

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        keys = self._parser(self.subcommand).callback_keys
        if trainer_config.get("enable_checkpointing") is False:
            keys = [key for key in keys if key not in CHECKPOINT_KEYS]  # Lightning refuses a ModelCheckpoint then
        callbacks = [self._get(self.config_init, key) for key in keys]
        return self._instantiate_trainer(trainer_config, [RunRecord(), *callbacks])  # first: the others read it

    def _run_subcommand(self, subcommand: str) -> None:
        """Run it, then say where its results are (and, for TensorBoard's HPARAMS tab, how it did)."""
        super()._run_subcommand(subcommand)
        if not self.trainer.is_global_zero:
            return
        # the folder the callbacks learnt in setup: trainer.log_dir would broadcast, from rank 0 alone
        folder = next(c.run_folder for c in self.trainer.callbacks if isinstance(c, RunFolderCallback))
        config = folder / self.save_config_kwargs.get("config_filename", "config.yaml")
        outputs = {}
        for callback in self.trainer.callbacks:
            if isinstance(callback, HuggingFaceExport) and (
                (subcommand == "fit" and callback.after_fit) or (subcommand == "test" and callback.after_test)
            ):
                outputs["export"] = callback.directory(folder)
            elif isinstance(callback, EvaluationReport) and callback.enabled:
                outputs["report"] = folder
            elif isinstance(callback, PredictionWriter):
                outputs["predictions"] = callback.output_path(folder)
            elif isinstance(callback, LandCoverMaps) and callback.scenes:
                outputs["maps"] = callback.directory(folder)
        print(closing_summary(self.trainer, subcommand, folder, config, outputs))
        record = record_of(self.trainer)
        run_figures = record.best_val(self.trainer)[1] if subcommand == "fit" else record.test
        log_run_metrics(self.trainer, dict(self.model.hparams), run_figures)

    def after_instantiate_classes(self) -> None:
        if self.subcommand is None:
            return
        self.model.check_classes(self.checkpoint_hparams.get("class_names"))  # before the data is decoded
        if rank_zero_only.rank != 0:
            return
        checkpoints = [c for c in self.trainer.callbacks if isinstance(c, ModelCheckpoint)]
        built_in = [self._get(self.config_init, key) for key in CHECKPOINT_KEYS]
        if any(all(c is not ours for ours in built_in) for c in checkpoints):
            raise ConfigError(
                "trainer.callbacks holds a ModelCheckpoint besides the built-in ones; configure those with "
                "--checkpoint.* (best.ckpt) and --last_checkpoint.* (last.ckpt), and remove ModelCheckpoint "
                "from trainer.callbacks"
            )
        if checkpoints and built_in[0].save_last:
            raise ConfigError(
                "checkpoint.save_last: last.ckpt is written every epoch by the last_checkpoint group; "
                "leave checkpoint.save_last unset (configure last.ckpt with --last_checkpoint.*)"
            )
        folder = run_folder(self.trainer)
        check_writable(folder, "trainer.logger.init_args.save_dir (or trainer.default_root_dir)")
        continuing = self.resumed_run is not None and folder.resolve() == self.resumed_run
        earlier = [p for pattern in RUN_FILES for p in folder.glob(pattern)]
        if self.subcommand == "fit" and earlier and not continuing:
            raise OutputError(
                f"{folder} already holds a run ({earlier[0].name}); leave trainer.logger.init_args.version "
                "unset so each run gets a new version folder, or choose another folder"
            )
        resuming = self.config[self.subcommand].get("ckpt_path") is not None
        for callback in checkpoints:
            if callback.dirpath is not None:
                dirpath = Path(callback.dirpath)
                check_writable(dirpath, "--checkpoint.dirpath")
                if self.subcommand == "fit" and not resuming and any(dirpath.glob("*.ckpt")):
                    raise OutputError(
                        f"{dirpath} already holds checkpoints of an earlier run; choose another "
                        "--checkpoint.dirpath (or leave it unset), or resume with --ckpt_path"
                    )
        for callback in self.trainer.callbacks:
            if isinstance(callback, RunFolderCallback):
                callback.check_outputs(folder, self.subcommand)
        if continuing:
            keep_earlier_metrics(folder, self.resume_number)


DESCRIPTION = """Fine-tune a pretrained image classifier (ViT-B/16 by default) on EuroSAT RGB satellite
images, evaluate it, classify new images and map land cover in whole scenes. Start with the offline
demo, `eurosat fit --config configs/demo.yaml`; the reference fine-tune is configs/fit.yaml (a GPU),
the CPU recipe configs/cpu.yaml on top of it. `eurosat fit --help` lists every option (each is also a
config key) and `eurosat fit --print_config` prints them as YAML. Documentation: README.md and docs/
in the project."""


def build_cli(args: ArgsType = None, run: bool = True) -> EuroSATCLI:
    """Parse ``args`` (default: ``sys.argv[1:]``) and instantiate; with ``run`` also run the subcommand."""
    parser_kwargs = {"prog": "eurosat", "description": DESCRIPTION}
    return EuroSATCLI(ImageClassifier, EuroSATDataModule, args=args, run=run, parser_kwargs=parser_kwargs)


# Prints this package's INFO messages; main() points it at the sys.stderr of its call.
PROGRESS_HANDLER = logging.StreamHandler()
PROGRESS_HANDLER.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))


def show_progress_messages() -> None:
    """Print this package's INFO messages (downloading, decoding, waiting for another process), as
    Lightning does for its own."""
    PROGRESS_HANDLER.stream = sys.stderr  # not setStream: it flushes the old one, which may be closed
    logger = logging.getLogger("eurosat_finetune")
    if PROGRESS_HANDLER not in logger.handlers:
        logger.addHandler(PROGRESS_HANDLER)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def main(args: ArgsType = None) -> None:
    """Run ``eurosat <subcommand> ...``; ``args`` replaces ``sys.argv[1:]`` (for tests and notebooks).

    Errors the user can fix end the command with a one-line message and exit status 2.
    """
    show_progress_messages()
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
