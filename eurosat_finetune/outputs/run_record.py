"""What a run leaves, said when it ends: the closing summary each subcommand prints, the figures that
TensorBoard's HPARAMS tab compares runs by, and the facts the model card is written from."""

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from eurosat_finetune.outputs.run_folder import RunOutput


class RunRecord(Callback):
    """The validation metrics of every epoch and the test metrics, as logged (synced across processes),
    for the summary, the HPARAMS tab and the model card. The CLI adds it to every run."""

    def __init__(self) -> None:
        self.val: dict[int, dict[str, float]] = {}
        self.test: dict[str, float] = {}

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            metrics = trainer.callback_metrics.items()
            self.val[trainer.current_epoch] = {k: float(v) for k, v in metrics if k.startswith("val_")}

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.test = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test_")}

    def best_val(self, trainer: Trainer) -> tuple[int | None, dict[str, float]]:
        """The epoch of best.ckpt and its validation metrics (the last epoch's if no checkpoint was kept)."""
        best = best_checkpoint(trainer)
        epoch = best_epoch(best.best_model_path) if best is not None else max(self.val, default=None)
        return epoch, self.val.get(epoch, {}) if epoch is not None else {}


def record_of(trainer: Trainer) -> RunRecord | None:
    """The run's :class:`RunRecord`; None for a Trainer the CLI did not build (and gave none)."""
    return next((c for c in trainer.callbacks if isinstance(c, RunRecord)), None)


def best_checkpoint(trainer: Trainer) -> ModelCheckpoint | None:
    """The ``checkpoint`` group's callback (best.ckpt), if the run keeps one that exists here (a
    restored checkpoint carries its own run's best path, which may be elsewhere)."""
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.best_model_path and Path(callback.best_model_path).is_file():
        return callback
    return None


def best_epoch(path: str) -> int | None:
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("epoch")


def closing_summary(trainer: Trainer, subcommand: str, run_folder: Path, config: Path, outputs: list[RunOutput]) -> str:
    """The lines printed when ``subcommand`` ends: where its results are and what to run next."""
    record = record_of(trainer) or RunRecord()
    lines = [f"eurosat {subcommand} finished. Run folder: {run_folder}"]
    if subcommand == "fit":
        best = best_checkpoint(trainer)
        epoch, val = record.best_val(trainer)
        if best is not None:
            lines.append(f"  best checkpoint: {best.best_model_path} (epoch {epoch}: {figures(val, 'val')})")
            lines.append(f"  evaluate it:     eurosat test --config {config} --ckpt_path {best.best_model_path}")
        elif val:
            lines.append(f"  last validation (epoch {epoch}): {figures(val, 'val')}")
    elif subcommand == "validate":
        lines.append(f"  {figures(record.val.get(trainer.current_epoch, {}), 'val')}")
    elif subcommand == "test":
        lines.append(f"  {figures(record.test, 'test')}")
    lines += [f"  {output.what}: {output.path}" for output in outputs]
    return "\n".join(lines)


def figures(metrics: dict[str, float], stage: str) -> str:
    keys = (f"{stage}_acc", f"{stage}_macro_f1", f"{stage}_loss")
    return ", ".join(f"{key} {metrics[key]:.4f}" for key in keys if key in metrics) or "no metrics"


def log_run_metrics(trainer: Trainer, hparams: dict[str, Any], figures: dict[str, float]) -> None:
    """Log ``figures`` against the run's hyperparameters, for TensorBoard's HPARAMS tab."""
    if not figures:
        return
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hparams, {f"hp/{k}": v for k, v in figures.items()})
