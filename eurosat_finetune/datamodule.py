"""The class path ``eurosat_finetune.datamodule.EuroSATDataModule`` that every ``config.yaml`` written so far
names; the class lives in :mod:`eurosat_finetune.data.datamodule`."""

from eurosat_finetune.data.datamodule import EuroSATDataModule

__all__ = ["EuroSATDataModule"]
