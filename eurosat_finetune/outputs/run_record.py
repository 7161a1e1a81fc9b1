"""What a run leaves, said when it ends: the closing summary each subcommand prints, the figures that
TensorBoard's HPARAMS tab compares runs by, and the facts the model card is written from."""

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from eurosat_finetune.outputs.run_folder import RunOutput
from eurosat_finetune.statistics.proportions import Interval, proportion_interval


class RunRecord(Callback):
    """The metrics of every validation and of the test, as logged (synced across processes), for the
    summary, the HPARAMS tab and the model card. The CLI adds it to every run.

    Validations are keyed by the global step they ran at, which checkpoints record too: with
    ``trainer.val_check_interval`` < 1 an epoch validates several times, and best.ckpt's figures are
    those of the validation that wrote it. Checkpoints keep the record, so a resumed run still has
    the figures of a best.ckpt written before it stopped."""

    def __init__(self) -> None:
        self.val: dict[int, dict[str, float]] = {}  # global step -> validation metrics
        self.epoch_at: dict[int, int] = {}  # global step -> the epoch it was in
        self.test: dict[str, float] = {}

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            metrics = trainer.callback_metrics.items()
            val = {k: float(v) for k, v in metrics if k.startswith("val_")}
            images = getattr(pl_module, "val_images", None)
            if images and "val_acc" in val:  # the images right are a whole number: acc x images, rounded
                interval = proportion_interval(round(val["val_acc"] * images), images)
                val.update(val_images=images, val_acc_low=interval.low, val_acc_high=interval.high)
            self.val[trainer.global_step] = val
            self.epoch_at[trainer.global_step] = trainer.current_epoch

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.test = test_figures(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"val": self.val, "epoch_at": self.epoch_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.val, self.epoch_at = dict(state_dict["val"]), dict(state_dict["epoch_at"])

    def last_val(self) -> tuple[int | None, dict[str, float]]:
        """The epoch and metrics of the latest validation."""
        step = next(reversed(self.val), None)
        return (self.epoch_at[step], self.val[step]) if step is not None else (None, {})

    def best_val(self, trainer: Trainer) -> tuple[int | None, dict[str, float]]:
        """The epoch of best.ckpt and the metrics of the validation that wrote it (the latest
        validation's if no checkpoint was kept)."""
        best = best_checkpoint(trainer)
        if best is None:
            return self.last_val()
        saved = torch.load(best.best_model_path, map_location="cpu", weights_only=True, mmap=True)
        return saved.get("epoch"), self.val.get(saved.get("global_step"), {})


def test_figures(trainer: Trainer) -> dict[str, float]:
    """The test's metrics as logged, with the number of images and the 95% intervals of its accuracy and
    macro F1 that the model worked out from its confusion matrix (``test_acc_low``, ``test_acc_high``, ...)."""
    figures = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test_")}
    intervals = getattr(trainer.lightning_module, "test_intervals", None)
    if intervals is not None:
        figures.update(
            test_images=intervals.images,
            test_acc_low=intervals.accuracy.low,
            test_acc_high=intervals.accuracy.high,
            test_macro_f1_low=intervals.macro_f1.low,
            test_macro_f1_high=intervals.macro_f1.high,
        )
    return figures


def record_of(trainer: Trainer) -> RunRecord | None:
    """The run's :class:`RunRecord`; None for a Trainer the CLI did not build (and gave none)."""
    return next((c for c in trainer.callbacks if isinstance(c, RunRecord)), None)


def best_checkpoint(trainer: Trainer) -> ModelCheckpoint | None:
    """The callback of best.ckpt (the ``checkpoint`` group), known by what it is: the checkpoint callback
    that monitors a metric (the ``last_checkpoint`` group monitors none, and the CLI allows no other),
    wherever Lightning's callback order puts it; if it kept a file that exists here (a restored
    checkpoint carries its own run's best path, which may be elsewhere)."""
    monitoring = (c for c in trainer.checkpoint_callbacks if c.monitor is not None)
    return next((c for c in monitoring if c.best_model_path and Path(c.best_model_path).is_file()), None)


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
        lines.append(f"  {figures(record.last_val()[1], 'val')}")
    elif subcommand == "test":
        tta = bool(trainer.lightning_module.hparams.get("tta"))
        lines.append(f"  {figures(record.test, 'test')}" + (" (with test-time augmentation)" if tta else ""))
    lines += [f"  {output.what}: {output.path}" for output in outputs]
    return "\n".join(lines)


def figures(metrics: dict[str, float], stage: str) -> str:
    """``test_acc 0.9841 (95% CI 0.9804 to 0.9871, 5400 images), test_macro_f1 ..., test_loss 0.0512``."""
    said = []
    for key in (f"{stage}_acc", f"{stage}_macro_f1", f"{stage}_loss"):
        if key not in metrics:
            continue
        figure = f"{key} {metrics[key]:.4f}"
        bounds = interval_of(metrics, key)
        if bounds is not None:
            images = f", {int(metrics[f'{stage}_images'])} images" if key == f"{stage}_acc" else ""
            figure += f" (95% CI {bounds}{images})"
        said.append(figure)
    return ", ".join(said) or "no metrics"


def interval_of(metrics: dict[str, float], key: str) -> str | None:
    """``0.9804 to 0.9871``, the 95% interval the record holds for ``key`` (its ``_low`` and ``_high``); ``n/a``
    where none could be given; None where the record holds none."""
    if f"{key}_low" not in metrics:
        return None
    return Interval(metrics[key], metrics[f"{key}_low"], metrics[f"{key}_high"], "as recorded").bounds()


def log_run_metrics(trainer: Trainer, hparams: dict[str, Any], figures: dict[str, float]) -> None:
    """Log ``figures`` against the run's hyperparameters, for TensorBoard's HPARAMS tab."""
    if not figures:
        return
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hparams, {f"hp/{k}": v for k, v in figures.items()})
