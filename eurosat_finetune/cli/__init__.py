"""The ``eurosat`` command: LightningCLI over :class:`ImageClassifier` and :class:`EuroSATDataModule`."""

from eurosat_finetune.cli.command import EuroSATCLI, build_cli, main, show_progress_messages

__all__ = ["EuroSATCLI", "build_cli", "main", "show_progress_messages"]
