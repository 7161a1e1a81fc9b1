"""The run folder: where a run's files go (the logger's ``version_N``, else ``default_root_dir``)."""

from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger


def run_folder(trainer: Trainer) -> Path:
    """The folder this run's files belong in.

    Under DDP every process must call this at the same point: ``trainer.log_dir`` broadcasts rank 0's
    folder (the others could otherwise compute the next version number themselves).
    """
    return Path(trainer.log_dir or trainer.default_root_dir)


class RunFolderCallback(Callback):
    """A callback that writes into the run folder; it learns the folder in ``setup``, on every process."""

    run_folder: Path

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)  # cooperative: BasePredictionWriter checks things here
        self.run_folder = run_folder(trainer)

    def check_outputs(self, run_folder: Path, subcommand: str) -> None:
        """Raise :class:`OutputError` if ``subcommand`` would make this callback overwrite a file; the
        CLI calls this before any work starts."""


def tensorboard(trainer: Trainer) -> Any:
    """The TensorBoard ``SummaryWriter`` of the run, or None if it does not log to TensorBoard."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None
