"""The ``eurosat`` command: LightningCLI over :class:`ViTClassifier` and :class:`EuroSATDataModule`."""

from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from eurosat_finetune.callbacks import EvaluationReport, HuggingFaceExport, PredictionWriter, ValidationSamples
from eurosat_finetune.data import EuroSATDataModule
from eurosat_finetune.model import ViTClassifier


class EuroSATCLI(LightningCLI):
    """LightningCLI whose model takes its class names from the data, so they are configured once,
    and whose runs always report, sample, predict to CSV and export (each group configurable)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.class_names", "model.class_names", apply_on="instantiate")
        parser.add_lightning_class_args(EvaluationReport, "report")
        parser.add_lightning_class_args(ValidationSamples, "val_samples")
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.add_lightning_class_args(HuggingFaceExport, "export")


def build_cli(args: ArgsType = None, run: bool = True) -> EuroSATCLI:
    """Parse ``args`` (default: ``sys.argv[1:]``) and instantiate; with ``run`` also run the subcommand."""
    return EuroSATCLI(ViTClassifier, EuroSATDataModule, args=args, run=run)


def main(args: ArgsType = None) -> None:
    """Run ``eurosat <subcommand> ...``; ``args`` replaces ``sys.argv[1:]`` (for tests and notebooks)."""
    build_cli(args)
