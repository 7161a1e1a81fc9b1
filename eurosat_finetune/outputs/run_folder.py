"""The run folder: where a run's files go (the logger's ``version_N``, else ``default_root_dir``), and
the callbacks that write into it, each saying what it will write."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from eurosat_finetune.errors import OutputError


def run_folder(trainer: Trainer) -> Path:
    """The folder this run's files belong in.

    Under DDP every process must call this at the same point: ``trainer.log_dir`` broadcasts rank 0's
    folder (the others could otherwise compute the next version number themselves).
    """
    return Path(trainer.log_dir or trainer.default_root_dir)


@dataclass(frozen=True)
class RunOutput:
    """A file or folder a callback writes, and the option that puts it elsewhere."""

    what: str  # as the closing summary names it, e.g. "predictions"
    path: Path
    option: str  # e.g. "--predictions.output"

    def refuse_existing(self) -> None:
        """Raise :class:`OutputError` if writing it would overwrite an earlier result."""
        if self.path.is_dir() and any(self.path.iterdir()):
            raise OutputError(f"{self.path} already holds files; choose another {self.option} or move them")
        if self.path.is_file():
            raise OutputError(f"{self.path} already exists; choose another {self.option} or move it")


class RunFolderCallback(Callback):
    """A callback that writes into the run folder; it learns the folder in ``setup``, on every process."""

    run_folder: Path

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)  # cooperative: BasePredictionWriter checks things here
        self.run_folder = run_folder(trainer)

    def outputs(self, run_folder: Path, subcommand: str) -> list[RunOutput]:
        """What this callback writes in ``subcommand`` for a run in ``run_folder``. The CLI refuses to
        start if any of it exists, and names what was written when the subcommand ends."""
        return []

    def check_inputs(self, subcommand: str) -> None:
        """Read and check, on every process, what this callback reads in ``subcommand`` (an earlier run's
        files, say), so that a bad one is refused in one line before any work."""


def tensorboard(trainer: Trainer) -> Any:
    """The TensorBoard ``SummaryWriter`` of the run, or None if it does not log to TensorBoard."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None
