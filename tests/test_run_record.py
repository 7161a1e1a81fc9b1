"""The run record keys validations by the step they ran at, so with several validations an epoch the
best figures are those of the validation that wrote best.ckpt; it finds the best checkpoint group by
what it is (the one that monitors), wherever Lightning's callback list puts it."""

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import FAST, TINY_VIT, run_cli, version_dir, wilson_by_hand
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from transformers import AutoModelForImageClassification

from eurosat_finetune.data.datamodule import EuroSATDataModule
from eurosat_finetune.data.loaders import LoaderOptions
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.options import NetworkOptions, OptimizationOptions
from eurosat_finetune.outputs.huggingface_export import HuggingFaceExport
from eurosat_finetune.outputs.run_record import RunRecord, best_checkpoint

TINY_MODEL = ["--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]


def validations(run: Path) -> list[dict[str, float]]:
    """Each validation's metrics as the CSVLogger wrote them, in order, with the step they were logged at."""
    with open(run / "metrics.csv", newline="") as f:
        rows = [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]
    return [row for row in rows if "val_loss" in row]


def test_summary_gives_the_best_validation_not_the_epoch_s_last(
    sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # 9 batches an epoch, validated after 4 and 9; the learning rate jumps 30x after step 4, so the
    # first validation is the best and the epoch's last is worse
    args = ["fit", *FAST, *TINY_MODEL, f"--data.root={sample_root}", "--seed_everything=7", "--export.after_fit=false"]
    args += ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp_path}", "--trainer.max_epochs=1"]
    args += ["--trainer.val_check_interval=0.5", "--model.optimizer=AdamW", "--model.optimizer.lr=0.01"]
    args += ["--model.scheduler=StepLR", "--model.scheduler.step_size=4", "--model.scheduler.gamma=30"]
    printed = run_cli([*args, "--model.optimization.scheduler_interval=step"], capsys)
    run = version_dir(tmp_path, 0)
    first, last = validations(run)
    assert first["val_loss"] < last["val_loss"], (first, last)
    best = run / "checkpoints" / "best.ckpt"
    saved = torch.load(best, weights_only=True)
    assert saved["global_step"] == first["step"] + 1 == 4  # CSVLogger's step counts from 0
    low, high = wilson_by_hand(round(first["val_acc"] * 20), 20)  # the split's 20 validation images
    said = f"val_acc {first['val_acc']:.4f} (95% CI {low:.4f} to {high:.4f}, 20 images), "
    said += f"val_macro_f1 {first['val_macro_f1']:.4f}, val_loss {first['val_loss']:.4f}"
    assert f"best checkpoint: {best} (epoch 0: {said})" in printed, printed


@pytest.mark.filterwarnings("ignore:Attribute 'scheduler' removed from hparams")  # a lambda, not saved
def test_best_checkpoint_is_found_by_what_it_is_in_any_callback_order(sample_root: Path, tmp_path: Path) -> None:
    seed_everything(7)
    data = EuroSATDataModule(root=sample_root, loader=LoaderOptions(batch_size=16, num_workers=0))
    model = ImageClassifier(
        data.class_names,
        network=NetworkOptions(pretrained=None, architecture={"model_type": "vit", **TINY_VIT}),
        optimizer={"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01}},
        scheduler=lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=30),
        optimization=OptimizationOptions(scheduler_interval="step"),
    )
    folder = str(tmp_path / "checkpoints")
    last = ModelCheckpoint(folder, filename="last", enable_version_counter=False)
    best = ModelCheckpoint(folder, filename="best", monitor="val_loss", mode="min")
    record = RunRecord()
    export = HuggingFaceExport(dirpath=tmp_path / "export")
    # the last-checkpoint group listed first: Lightning's trainer.checkpoint_callback is then last.ckpt's
    callbacks = [last, best, record, export]
    trainer = Trainer(max_epochs=1, limit_train_batches=4, val_check_interval=0.5, callbacks=callbacks,
                      logger=CSVLogger(tmp_path), accelerator="cpu", enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(model, datamodule=data)
    assert trainer.checkpoint_callback is last
    first, second = validations(version_dir(tmp_path, 0))
    assert first["val_loss"] < second["val_loss"], (first, second)  # the lr jumps 30x after step 2
    assert best_checkpoint(trainer) is best and Path(best.best_model_path).name == "best.ckpt"
    epoch, val = record.best_val(trainer)
    logged = {k: v for k, v in first.items() if k.startswith("val_")}
    assert epoch == 0 and {k: val[k] for k in logged} == pytest.approx(logged)
    low, high = wilson_by_hand(round(first["val_acc"] * 20), 20)  # the split's 20 validation images
    assert (val["val_images"], val["val_acc_low"], val["val_acc_high"]) == pytest.approx((20, low, high))
    exported = AutoModelForImageClassification.from_pretrained(tmp_path / "export").state_dict()  # best.ckpt's
    for path, same in ((best.best_model_path, True), (last.best_model_path, False)):
        saved = torch.load(path, weights_only=True)["state_dict"]
        assert all(torch.equal(value, saved[f"net.{key}"]) for key, value in exported.items()) == same


def test_a_figure_with_no_interval_says_so() -> None:
    """Every test image right: the bootstrap cannot give macro F1 an interval, and the summary says n/a, not nan."""
    from eurosat_finetune.outputs.run_record import figures

    said = figures(
        {"test_acc": 1.0, "test_acc_low": 0.98, "test_acc_high": 1.0, "test_images": 200, "test_macro_f1": 1.0,
         "test_macro_f1_low": float("nan"), "test_macro_f1_high": float("nan"), "test_loss": 0.01},
        "test",
    )  # fmt: skip
    assert said == (
        "test_acc 1.0000 (95% CI 0.9800 to 1.0000, 200 images), test_macro_f1 1.0000 (95% CI n/a), test_loss 0.0100"
    )
