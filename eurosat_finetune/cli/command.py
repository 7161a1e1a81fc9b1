"""The ``eurosat`` command: LightningCLI over :class:`ImageClassifier` and :class:`EuroSATDataModule`,
extended through its public hooks only (``add_arguments_to_parser``, ``parse_arguments``,
``before_instantiate_classes``, ``after_instantiate_classes``, ``after_<subcommand>``,
``trainer_defaults``, ``parser_kwargs``, ``save_config_kwargs``)."""

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only

from eurosat_finetune import __version__, renamed_options
from eurosat_finetune.cli import preflight
from eurosat_finetune.cli.cpu_precision import warn_software_bf16
from eurosat_finetune.cli.known_messages import quieted
from eurosat_finetune.cli.parser import EuroSATArgumentParser
from eurosat_finetune.cli.parser_once import set_up_once
from eurosat_finetune.cli.resume import (
    continue_resumed_run,
    keep_earlier_metrics,
    keep_earlier_outputs,
    last_checkpoint_of,
    resume_number,
    resumed_config_name,
)
from eurosat_finetune.cli.run_claim import claim_run_folders, release_unused_claims, unclaimed_in_config
from eurosat_finetune.data.datamodule import EuroSATDataModule
from eurosat_finetune.errors import UserError
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.optimization import refuse_negative_learning_rate
from eurosat_finetune.outputs.huggingface_export import HuggingFaceExport
from eurosat_finetune.outputs.land_cover_maps import LandCoverMaps
from eurosat_finetune.outputs.predictions_csv import PredictionWriter
from eurosat_finetune.outputs.report import EvaluationReport
from eurosat_finetune.outputs.run_folder import RunFolderCallback, run_folder
from eurosat_finetune.outputs.run_record import RunRecord, closing_summary, log_run_metrics, record_of
from eurosat_finetune.outputs.throughput import TrainingThroughput
from eurosat_finetune.outputs.validation_samples import ValidationSamples
from eurosat_finetune.renamed_options import RenamedOptionWarning, renamed_args, renamed_config

# Model options chosen when evaluating, not when training: the command's value wins over the checkpoint's.
EVALUATION_OPTIONS = ("tta",)

# The built-in ModelCheckpoint groups: best.ckpt and last.ckpt.
CHECKPOINT_GROUPS = ("checkpoint", "last_checkpoint")

# The config groups of the callbacks that write a run's outputs, each configured with --<group>.*
OUTPUT_GROUPS = {
    "report": EvaluationReport,
    "val_samples": ValidationSamples,
    "predictions": PredictionWriter,
    "export": HuggingFaceExport,
    "maps": LandCoverMaps,
    "throughput": TrainingThroughput,
}


class EuroSATCLI(LightningCLI):
    """LightningCLI whose model takes its class names from the data, so they are configured once;
    whose runs always keep the best and last checkpoints, report, sample, predict to CSV and export
    (each group configurable); and which checks its inputs and outputs before any work starts."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.class_names", "model.class_names", apply_on="instantiate")
        parser.link_arguments("data.input_bands", "model.input_bands", apply_on="instantiate")
        for group in CHECKPOINT_GROUPS:
            parser.add_lightning_class_args(ModelCheckpoint, group)
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
        for group, callback_class in OUTPUT_GROUPS.items():
            parser.add_lightning_class_args(callback_class, group)

    def setup_parser(
        self, add_subcommands: bool, main_kwargs: dict[str, Any], subparser_kwargs: dict[str, Any]
    ) -> None:
        def set_up() -> None:
            super(EuroSATCLI, self).setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
            self.parser.add_argument("--version", action="version", version=f"eurosat-finetune {__version__}")

        # what the parser is built from: the classes themselves (one redefined in a notebook is another
        # class), LightningCLI's other arguments (the callbacks are not in the parser) and jsonargparse's
        # environment variables, read when a parser is made
        classes = (type(self), self.model_class, self.datamodule_class, self.trainer_class, self.parser_class)
        defaults = {key: value for key, value in self.trainer_defaults.items() if key != "callbacks"}
        options = (add_subcommands, main_kwargs, subparser_kwargs, defaults, self.seed_everything_default)
        options += (self.subclass_mode_model, self.subclass_mode_data, self.auto_configure_optimizers)
        environment = sorted((key, value) for key, value in os.environ.items() if key.startswith("JSONARGPARSE_"))
        set_up_once(self, (classes, repr(options), tuple(environment)), set_up)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Check ``--ckpt_path`` before LightningCLI reads the model's options from it, and note the
        command's evaluation options, which that would replace with the checkpoint's."""
        # options given by their names before the groups are translated, each with one warning: here, in
        # the configs and in the --ckpt_path's hyperparameters, which LightningCLI parses after this hook
        renamed_options.warned_in_command = set()
        given = sys.argv[1:] if args is None else args
        translated = renamed_args(list(given)) if isinstance(given, list) else renamed_config(dict(given))
        with warnings.catch_warnings():
            # what the user typed, translated: not the mix of argv and args that Lightning warns of
            warnings.filterwarnings("ignore", "LightningCLI's args parameter", UserWarning)
            super().parse_arguments(parser, args if translated == given else translated)
        subcommand = self.config.get("subcommand")
        for group in ("model", "data"):  # jsonargparse takes a scalar where a group's file path could be
            value = (self.config[subcommand] if subcommand else self.config).get(group)
            if value is not None and not isinstance(value, Namespace):
                parser.error(
                    f"{group}: {value!r} is neither the {group} options (a mapping) nor a config file's path; "
                    f"give {group}: {{...}} or {group}: <file>.yaml"
                )
        self.checkpoint_hparams: dict[str, Any] = {}
        self.evaluation_options: dict[str, Any] = {}
        if subcommand:
            ckpt_path = self.config[subcommand].get("ckpt_path")
            if subcommand == "fit" and ckpt_path == "last":
                last = last_checkpoint_of(self.config.fit)
                ckpt_path = self.config.fit.ckpt_path = str(last) if last is not None else ckpt_path
            if ckpt_path and ckpt_path not in preflight.SPECIAL_CKPT_PATHS:
                self.checkpoint_hparams = preflight.check_checkpoint(ckpt_path)
            self.evaluation_options = {key: self.config[subcommand].model.get(key) for key in EVALUATION_OPTIONS}

    def command_config(self, config: Namespace) -> Namespace:
        """The part of ``config`` (parsed or instantiated) that belongs to the subcommand."""
        return config[self.subcommand] if self.subcommand else config

    def before_instantiate_classes(self) -> None:
        """The command's evaluation options win over a checkpoint's (``--model.tta true`` on a checkpoint
        trained without it); a checkpoint's bands reach the data here (see :meth:`checkpoint_bands`).
        Predict returns nothing by default: its writers stream results to files, and kept in memory as
        well they would grow with the scenes mapped. A fit resumed from a run's own checkpoint
        continues that run (see :mod:`.resume`); any other gets a run folder of its own (see
        :mod:`.run_claim`)."""
        renamed_options.warned_in_command = None  # the command's options are all parsed
        config = self.command_config(self.config)
        # before the data is provided: the model, built after it (it takes the data's class names), would refuse
        # it only then
        optimizer = config.model.get("optimizer")
        if isinstance(optimizer, Namespace) and isinstance(optimizer.get("init_args"), Namespace):
            refuse_negative_learning_rate(optimizer.init_args.get("lr"))
        if rank_zero_only.rank == 0:
            warn_software_bf16(config.trainer.get("accelerator"), config.trainer.get("precision"))
        for key, value in self.evaluation_options.items():
            config.model[key] = value
        self.checkpoint_bands(config)
        if self.subcommand == "predict" and config.get("return_predictions") is None:
            config.return_predictions = False
        if self.subcommand != "predict":  # predict-only (a shared config may set it): the labelled data is read
            config.data.predict_root = None
        if config.trainer.get("enable_checkpointing") is False:
            # Lightning refuses any ModelCheckpoint then, and the two groups are always added: keep
            # them, writing nothing
            config.trainer.enable_checkpointing = None
            for group in CHECKPOINT_GROUPS:
                config[group].save_top_k = 0
        self.resumed_run = continue_resumed_run(config) if self.subcommand == "fit" else None
        self.claimed = claim_run_folders(config.trainer) if self.subcommand is not None else []
        if self.resumed_run is not None:
            self.resume_number = resume_number(self.resumed_run)
            config_name = resumed_config_name(self.resumed_run, self.resume_number)
            self.save_config_kwargs = {**self.save_config_kwargs, "config_filename": config_name}

    def checkpoint_bands(self, config: Namespace) -> None:
        """The one route by which a checkpoint's bands (its ``model.input_bands`` names; none: RGB) reach
        the data, as ``data.bands``. Predicting new files (``data.predict_root``) reads them and no others,
        whatever a config says (the network takes those); labelled data is read in them unless
        ``data.bands`` names others, which :meth:`after_instantiate_classes` then refuses in one line."""
        if not self.checkpoint_hparams:
            return
        trained_bands = (self.checkpoint_hparams.get("input_bands") or {}).get("names")
        new_files = self.subcommand == "predict" and config.data.get("predict_root") is not None
        given = config.data.get("bands")
        if not new_files and trained_bands and isinstance(given, list) and len(given) != len(trained_bands):
            # refused here, before the model is built for the checkpoint's channels and blames its statistics
            preflight.check_bands(self.checkpoint_hparams.get("input_bands"), list(given))
        if new_files or (trained_bands and config.data.get("bands") is None):
            config.data.bands = trained_bands

    def after_instantiate_classes(self) -> None:
        """Refuse, before the data is decoded, a checkpoint of other classes, a stray checkpoint
        callback, an input a callback cannot read, and any output that would overwrite an earlier result
        (see :mod:`.preflight`)."""
        if self.subcommand is None:
            return
        unclaimed_in_config(self.claimed)
        self.model.check_classes(self.checkpoint_hparams.get("class_names"))
        preflight.check_reference_points(self.trainer, self.model.class_names, self.subcommand)
        if self.checkpoint_hparams and self.datamodule.class_names is not None:  # labelled data: its bands
            preflight.check_bands(self.checkpoint_hparams.get("input_bands"), self.datamodule.band_names)
        for callback in self.trainer.callbacks:
            if isinstance(callback, RunFolderCallback):
                callback.check_inputs(self.subcommand)
        if rank_zero_only.rank != 0:
            return
        built_in = [self.command_config(self.config_init)[group] for group in CHECKPOINT_GROUPS]
        checkpoints = preflight.check_checkpoint_callbacks(self.trainer, built_in)
        folder = run_folder(self.trainer)
        continuing = self.resumed_run is not None and folder.resolve() == self.resumed_run
        preflight.check_run_folder(folder, self.subcommand, continuing)
        resuming = self.command_config(self.config).get("ckpt_path") is not None
        preflight.check_checkpoint_folders(checkpoints, self.subcommand, resuming)
        if continuing:  # its earlier outputs are kept aside, as its metrics
            outputs = preflight.run_outputs(self.trainer, folder, self.subcommand)
            keep_earlier_outputs([output.path for output in outputs], folder, self.resume_number)
            keep_earlier_metrics(folder, self.resume_number)
        preflight.check_outputs(self.trainer, folder, self.subcommand)

    def after_fit(self) -> None:
        self.summarise()

    def after_validate(self) -> None:
        self.summarise()

    def after_test(self) -> None:
        self.summarise()

    def after_predict(self) -> None:
        self.summarise()

    def summarise(self) -> None:
        """Say where the subcommand's results are, and log its figures for TensorBoard's HPARAMS tab."""
        if not self.trainer.is_global_zero:
            return
        writers = [c for c in self.trainer.callbacks if isinstance(c, RunFolderCallback)]
        # the folder the callbacks learnt in setup: trainer.log_dir would broadcast, from rank 0 alone
        folder = writers[0].run_folder
        config = folder / self.save_config_kwargs.get("config_filename", "config.yaml")
        written = [o for o in preflight.run_outputs(self.trainer, folder, self.subcommand) if o.path.exists()]
        print(closing_summary(self.trainer, self.subcommand, folder, config, written))
        record = record_of(self.trainer)
        if record is not None:
            run_figures = record.best_val(self.trainer)[1] if self.subcommand == "fit" else record.test
            log_run_metrics(self.trainer, dict(self.model.hparams), run_figures)


DESCRIPTION = """Fine-tune a pretrained image classifier (ViT-B/16 by default) on EuroSAT RGB satellite
images, evaluate it, classify new images and map land cover in whole scenes. Start with the offline
demo, `eurosat fit --config configs/demo.yaml`; the reference fine-tune is configs/fit.yaml (a GPU),
the CPU recipe configs/cpu.yaml on top of it. `eurosat fit --help` lists every option (each is also a
config key) and `eurosat fit --print_config` prints them as YAML. Documentation: README.md and docs/
in the project."""


def build_cli(args: ArgsType = None, run: bool = True) -> EuroSATCLI:
    """Parse ``args`` (default: ``sys.argv[1:]``) and instantiate; with ``run`` also run the subcommand."""
    return EuroSATCLI(
        ImageClassifier,
        EuroSATDataModule,
        args=args,
        run=run,
        parser_kwargs={"prog": "eurosat", "description": DESCRIPTION},
        parser_class=EuroSATArgumentParser,
        # in every run, not configurable: the summary, the HPARAMS figures and the model card read it
        trainer_defaults={"callbacks": [RunRecord()]},
    )


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
    # Python hides DeprecationWarnings outside __main__: users of an old option name should see its new one,
    # in one line, as the command's other messages (not the line of this package that noticed it)
    warnings.simplefilter("default", RenamedOptionWarning)
    warnings.formatwarning = one_line_warning


FORMAT_WARNING = warnings.formatwarning  # Python's, for every other warning
PACKAGE_FOLDER = Path(__file__).resolve().parents[1]


def one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """``warnings.formatwarning`` that writes the package's own warnings (a renamed option, files left out, bf16 in
    software: their classes, or any raised from its code) as ``eurosat: warning: ...``, others as before."""
    own = category.__module__.startswith("eurosat_finetune") or Path(filename).is_relative_to(PACKAGE_FOLDER)
    if issubclass(category, RenamedOptionWarning) or own:
        return f"eurosat: warning: {message}\n"
    return FORMAT_WARNING(message, category, filename, lineno, line)


def main(args: ArgsType = None) -> None:
    """Run ``eurosat <subcommand> ...``; ``args`` replaces ``sys.argv[1:]`` (for tests and notebooks).

    Errors the user can fix end the command with a one-line message and exit status 2.
    """
    show_progress_messages()
    try:
        with quieted():  # libraries' messages known to be harmless here (cli/known_messages.py)
            build_cli(args)
    except UserError as err:
        release_unused_claims()
        sys.stderr.write(f"eurosat: error: {one_line(err)}\n")
        raise SystemExit(2) from None
    finally:
        renamed_options.warned_in_command = None  # a command stopped while parsing leaves no dedup behind


def one_line(err: UserError) -> str:
    """The error's own message, also when a DataLoader worker re-raised it with its traceback attached."""
    message = str(err).strip().splitlines()[-1]
    prefix = f"{type(err).__module__}.{type(err).__name__}: "
    return message.removeprefix(prefix)
