"""Progressive resizing: training epochs grow from a small size to model.image_size; validation, test
and the checkpoint stay at model.image_size."""

from pathlib import Path

import pytest
import torch
from conftest import FAST, run_cli
from lightning.pytorch import Callback, LightningModule, Trainer

from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.progressive_resizing import ProgressiveResizing

SEEN: list[tuple[str, int, int]] = []

TINY_RESNET = ["--model.network.pretrained=null", "--model.network.architecture.model_type=resnet",
               "--model.network.architecture.embedding_size=8", "--model.network.architecture.hidden_sizes=[8,8]",
               "--model.network.architecture.depths=[1,1]", "--model.input.size=32"]  # fmt: skip


class SizeRecorder(Callback):
    """Records the input size each step's network receives, by stage and epoch."""

    def record(self, stage: str, trainer: Trainer, pl_module: LightningModule, batch: tuple) -> None:
        images = batch[0] if isinstance(batch, list | tuple) else batch["images"]
        SEEN.append((stage, trainer.current_epoch, pl_module.preprocess(images).shape[-1]))

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: tuple, *_: object) -> None:
        self.record("train", trainer, pl_module, batch)

    def on_validation_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: tuple, *_: object) -> None:
        self.record("val", trainer, pl_module, batch)

    def on_test_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: tuple, *_: object) -> None:
        self.record("test", trainer, pl_module, batch)


def test_sizes_follow_the_ramp() -> None:
    ramp = ProgressiveResizing(min_size=64, end_epoch=8, start_epoch=2)
    assert [ramp.size_at(epoch, 96) for epoch in range(10)] == [64, 64, 64, 72, 72, 80, 88, 88, 96, 96]
    with pytest.raises(ValueError, match="0 <= start_epoch < end_epoch"):
        ProgressiveResizing(min_size=64, end_epoch=2, start_epoch=2)


def test_validation_outside_fit_keeps_the_models_size() -> None:
    """`eurosat validate` with a run's saved config (which names the callback): no fit started, so no
    size is set; the model keeps its own."""
    from types import SimpleNamespace

    from lightning.pytorch.trainer.states import TrainerFn

    ramp, module = ProgressiveResizing(min_size=16, end_epoch=2), SimpleNamespace(image_size=48)
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.state.fn = TrainerFn.VALIDATING
    ramp.on_validation_epoch_start(trainer, module)
    ramp.on_validation_epoch_end(trainer, module)
    assert module.image_size == 48


@pytest.mark.slow  # an end-to-end fit: the full suite; the ramp's sizes stay quick
def test_training_grows_to_the_models_size_and_evaluation_stays_there(sample_root: Path, tmp_path: Path) -> None:
    SEEN.clear()
    logs = ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp_path}"]
    callbacks = ["--trainer.callbacks+=eurosat_finetune.model.progressive_resizing.ProgressiveResizing",
                 "--trainer.callbacks.min_size=16", "--trainer.callbacks.end_epoch=2",
                 "--trainer.callbacks+=test_progressive_resizing.SizeRecorder"]  # fmt: skip
    run_cli(["fit", *FAST, *TINY_RESNET, f"--data.root={sample_root}", "--trainer.max_epochs=3",
             "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", *logs, *callbacks])  # fmt: skip
    train = sorted({(epoch, size) for stage, epoch, size in SEEN if stage == "train"})
    assert train == [(0, 16), (1, 24), (2, 32)]
    assert {size for stage, _, size in SEEN if stage == "val"} == {32}
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    model = ImageClassifier.load_from_checkpoint(checkpoint)
    assert model.image_size == 32 and model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)).shape == (1, 10)

    # the run's saved config names the callback: `eurosat validate` with it evaluates at 32 px
    SEEN.clear()
    run = tmp_path / "lightning_logs" / "version_0"
    run_cli(["validate", "--config", str(run / "config.yaml"), f"--ckpt_path={checkpoint}", *logs])
    assert {(stage, size) for stage, _, size in SEEN} == {("val", 32)}
