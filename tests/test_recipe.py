"""The training-recipe options, each tested for what it does: label smoothing, class weights, MixUp and
CutMix, test-time augmentation, layer-wise learning-rate decay, OneCycle sized to the run, weight
averaging (Lightning's EMA callback) and the throughput every fit logs."""

import csv
import json
import re
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST, TINY_VIT, cli_error, read_metrics, run_cli, version_dir
from safetensors.torch import load_file

from eurosat_finetune.cli import build_cli
from eurosat_finetune.model import ImageClassifier, optimization
from eurosat_finetune.model.options import InputOptions, LossOptions, NetworkOptions, OptimizationOptions
from eurosat_finetune.pixels import dihedral_views

CLASSES = [f"class{i}" for i in range(4)]
TINY_MODEL = ["--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]


def tiny(**options: object) -> ImageClassifier:
    torch.manual_seed(0)
    return ImageClassifier(
        CLASSES,
        network=NetworkOptions(pretrained=None, architecture={"model_type": "vit", **TINY_VIT}),
        input=InputOptions(size=32),
        **options,
    )


def csv_run(tmp_path: Path, name: str) -> list[str]:
    return ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp_path / name}"]


def test_print_config_shows_every_recipe_option(capsys: pytest.CaptureFixture) -> None:
    printed = run_cli(["fit", "--print_config"], capsys)
    for option in (
        "layer_decay",
        "decay_norms_and_biases",
        "label_smoothing",
        "class_weights",
        "mixup_alpha",
        "cutmix_alpha",
        "tta",
    ):
        assert f"  {option}:" in printed, option
    assert "throughput:\n  window_size: 50" in printed


def test_training_loss_smooths_labels_and_weights_classes() -> None:
    model = tiny(loss=LossOptions(label_smoothing=0.2, class_weights=[1.0, 2.0, 0.5, 1.0]))
    logits = torch.randn(6, 4)
    labels = torch.tensor([0, 1, 2, 3, 1, 2])
    # by hand: each target keeps 1 - 0.2 and spreads 0.2 over the 4 classes; each image weighs its class's weight
    targets = torch.full((6, 4), 0.2 / 4) + 0.8 * torch.eye(4)[labels]
    weights = torch.tensor([1.0, 2.0, 0.5, 1.0])
    per_image = -(targets * weights * logits.log_softmax(-1)).sum(-1)
    expected = per_image.sum() / weights[labels].sum()
    assert model.training_loss(logits, labels) == pytest.approx(expected.item(), rel=1e-5)
    assert model.criterion(logits, labels) == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())


def test_balanced_class_weights_come_from_the_training_split(
    sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "data" / "EuroSAT_RGB"
    shutil.copytree(sample_root / "EuroSAT_RGB", data, ignore=shutil.ignore_patterns(".*"))
    for image in sorted((data / "Forest").iterdir())[:12]:  # 8 Forest images against 20 of each other class
        image.unlink()
    args = ["fit", *FAST, *TINY_MODEL, f"--data.root={data.parent}", *csv_run(tmp_path, "logs")]
    cli = build_cli([*args, "--model.loss.class_weights=balanced", "--trainer.max_epochs=1"])
    counts = np.bincount(cli.datamodule.train_dataset.labels, minlength=10)
    assert counts.argmin() == cli.datamodule.class_names.index("Forest")
    assert cli.model.class_weights == pytest.approx(list(counts.sum() / (10 * counts)))

    message = cli_error([*args, "--model.loss.class_weights=[1, 2]"], capsys)
    assert message == (
        "eurosat: error: model.loss.class_weights has 2 values; give 10 non-negative ones (one per class, in label "
        "order) or 'balanced'\n"
    )


def test_mixup_blends_whole_images_and_cutmix_pastes_boxes() -> None:
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3])
    plain = tiny().preprocess(images)

    torch.manual_seed(1)
    pixels, targets = tiny(loss=LossOptions(mixup_alpha=1.0)).training_inputs(images, labels)
    lam = targets[0, 0]  # torchvision mixes each image with the one before it (a roll by 1)
    assert 0 < lam < 1 and targets.sum(-1) == pytest.approx(torch.ones(4))
    assert targets == pytest.approx(lam * torch.eye(4)[labels] + (1 - lam) * torch.eye(4)[labels.roll(1)])
    assert pixels == pytest.approx(lam * plain + (1 - lam) * plain.roll(1, 0), abs=1e-5)

    torch.manual_seed(2)
    pixels, targets = tiny(loss=LossOptions(cutmix_alpha=1.0)).training_inputs(images, labels)
    own = (pixels == plain).all(dim=1)  # per pixel: from the image itself, else from the one before it
    assert ((pixels == plain.roll(1, 0)).all(dim=1) | own).all()
    assert own.float().mean(dim=(1, 2)) == pytest.approx(targets[range(4), labels], abs=1e-6)
    assert 0 < targets[0, 0] < 1


def test_mixing_runs_in_fit_for_training_only(sample_root: Path, tmp_path: Path) -> None:
    mixing = ["--model.loss.mixup_alpha=0.2", "--model.loss.cutmix_alpha=1.0", "--model.loss.label_smoothing=0.1"]
    cli = build_cli(
        [
            "fit",
            *FAST,
            *TINY_MODEL,
            *mixing,
            "--trainer.max_epochs=1",
            "--trainer.log_every_n_steps=1",
            f"--data.root={sample_root}",
            *csv_run(tmp_path, "logs"),
        ]
    )
    metrics = read_metrics(version_dir(tmp_path / "logs", 0))
    assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= set(metrics)
    model, correct = cli.model.eval(), []
    with torch.no_grad():  # validation saw the images as they are: its accuracy is that of plain predictions
        for images, labels in cli.datamodule.val_dataloader():
            correct += (model(images).argmax(-1) == labels).tolist()
    assert metrics["val_acc"] == pytest.approx(sum(correct) / len(correct))


def test_tta_averages_the_eight_dihedral_views() -> None:
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    model, averaged = tiny().eval(), tiny(tta=True).eval()
    with torch.no_grad():
        turned = images.rot90(1, (-2, -1))
        assert not torch.allclose(model.evaluation_logits(images), model.evaluation_logits(turned), atol=1e-4)
        reference = averaged.evaluation_logits(images)
        for view in dihedral_views(images):  # the same probabilities whichever way up the image comes
            assert averaged.evaluation_logits(view) == pytest.approx(reference, abs=1e-5)
        probs = torch.stack([model(view).softmax(-1) for view in dihedral_views(images)]).mean(0)
        assert reference.exp() == pytest.approx(probs, abs=1e-6)


@pytest.mark.slow  # an end-to-end run: the full suite
def test_tta_given_at_test_time_applies_to_a_checkpoint_trained_without(sample_root: Path, tmp_path: Path) -> None:
    """LightningCLI restores the model's options from the checkpoint; --model.tta on the command wins."""
    common = [*FAST, *TINY_MODEL, f"--data.root={sample_root}"]
    run_cli(["fit", *common, *csv_run(tmp_path, "fit"), "--trainer.max_epochs=1"])
    best = str(version_dir(tmp_path / "fit", 0) / "checkpoints" / "best.ckpt")
    plain = build_cli(["test", *common, *csv_run(tmp_path, "plain"), f"--ckpt_path={best}"])
    tta = build_cli(["test", *common, *csv_run(tmp_path, "tta"), f"--ckpt_path={best}", "--model.tta=true"])
    assert not plain.model.hparams.tta and tta.model.hparams.tta
    # the losses by hand, from the checkpoint's weights: of the images as they are, and of the mean of the
    # probabilities of their eight views (four quarter turns, each also mirrored)
    model = ImageClassifier.load_from_checkpoint(best).eval()
    logits, averaged, labels = [], [], []
    with torch.no_grad():
        for images, batch_labels in tta.datamodule.test_dataloader():
            turns = [images.rot90(k, (-2, -1)) for k in range(4)]
            views = turns + [turn.flip(-1) for turn in turns]
            logits.append(model(images))
            averaged.append(torch.stack([model(view).softmax(-1) for view in views]).mean(0))
            labels.append(batch_labels)
    labels = torch.cat(labels)
    plain_loss = torch.nn.functional.cross_entropy(torch.cat(logits), labels).item()
    tta_loss = torch.nn.functional.nll_loss(torch.cat(averaged).log(), labels).item()
    assert abs(tta_loss - plain_loss) > 1e-5 * plain_loss  # the two can be told apart at the tolerance below
    assert read_metrics(version_dir(tmp_path / "plain", 0))["test_loss"] == pytest.approx(plain_loss, rel=1e-6)
    assert read_metrics(version_dir(tmp_path / "tta", 0))["test_loss"] == pytest.approx(tta_loss, rel=1e-6)


def test_layer_decay_gives_each_layer_its_rate() -> None:
    model = tiny(optimization=OptimizationOptions(layer_decay=0.5))
    optimizer = optimization.configure(
        lambda groups: torch.optim.AdamW(groups, lr=1e-3), optimization.parameter_groups(model.net, 0.5),
        None, "step", 1, 0, 10,
    )  # fmt: skip
    rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    named = dict(model.net.named_parameters())
    # 2 layers: embeddings 0.5^3, layer 0 0.5^2, layer 1 0.5, final norm and head the full rate
    assert rate[id(named["vit.embeddings.cls_token"])] == pytest.approx(1e-3 / 8)
    assert rate[id(named["vit.embeddings.patch_embeddings.projection.weight"])] == pytest.approx(1e-3 / 8)
    in_layer = {i: [p for n, p in named.items() if re.search(rf"\.layers?\.{i}\.", n)] for i in (0, 1)}
    assert in_layer[0] and all(rate[id(p)] == pytest.approx(1e-3 / 4) for p in in_layer[0])
    assert in_layer[1] and all(rate[id(p)] == pytest.approx(1e-3 / 2) for p in in_layer[1])
    assert rate[id(named["vit.layernorm.weight"])] == pytest.approx(1e-3)
    assert rate[id(named["classifier.weight"])] == pytest.approx(1e-3)
    assert len(rate) == len(named)


@pytest.mark.parametrize("layer_decay", [None, 0.5])
def test_weight_decay_can_spare_norms_and_biases(layer_decay: float | None) -> None:
    """One AdamW step with zero gradients is weight decay alone: it shrinks matrices and kernels by
    lr x weight_decay (each at its layer's rate), and leaves the 1-D parameters as they were when exempt."""
    adamw = partial(torch.optim.AdamW, lr=0.1, weight_decay=0.5)
    model = tiny(
        optimization=OptimizationOptions(layer_decay=layer_decay, decay_norms_and_biases=False), optimizer=adamw
    )
    optimizer = model.configure_optimizers()  # as Lightning builds it
    rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    before = {name: p.detach().clone() for name, p in model.net.named_parameters()}
    for p in model.net.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    named = dict(model.net.named_parameters())
    assert len(rate) == len(named)
    for name in ("vit.layernorm.weight", "vit.layernorm.bias", "classifier.bias", "vit.layers.0.mlp.fc2.bias"):
        torch.testing.assert_close(named[name], before[name], rtol=0, atol=0, msg=name)
    for name in ("classifier.weight", "vit.layers.0.mlp.fc2.weight", "vit.embeddings.cls_token"):
        torch.testing.assert_close(named[name], before[name] * (1 - rate[id(named[name])] * 0.5), msg=name)
    # exempt from decay, not from layer-wise rates: a bias learns at its own layer's rate
    layer_0 = 1e-1 * (0.5**2 if layer_decay else 1)
    assert rate[id(named["vit.layers.0.mlp.fc2.bias"])] == rate[id(named["vit.layers.0.mlp.fc2.weight"])]
    assert rate[id(named["vit.layers.0.mlp.fc2.bias"])] == pytest.approx(layer_0)
    # with decay on everything (the default), the same step shrinks a norm's scale too
    model = tiny(optimization=OptimizationOptions(layer_decay=layer_decay), optimizer=adamw)
    optimizer = model.configure_optimizers()
    scale = model.net.vit.layernorm.weight
    scale.grad, start = torch.zeros_like(scale), scale.detach().clone()
    optimizer.step()
    torch.testing.assert_close(scale, start * (1 - 0.1 * 0.5))


@pytest.mark.slow  # three short fits: the full suite
def test_resuming_with_other_parameter_groups_is_one_line(
    sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A checkpoint from before model.decay_norms_and_biases (its hparams lack it), resumed with it false:
    the checkpoint's optimizer state has one group, the run's options make two."""
    common = [*FAST, *TINY_MODEL, "--model.optimizer=AdamW", f"--data.root={sample_root}", "--trainer.max_epochs=2"]
    run_cli(["fit", *common, *csv_run(tmp_path, "fit"), "--trainer.max_epochs=1"])
    checkpoint = torch.load(version_dir(tmp_path / "fit", 0) / "checkpoints" / "last.ckpt", weights_only=False)
    del checkpoint["hyper_parameters"]["optimization"]["decay_norms_and_biases"]
    torch.save(checkpoint, tmp_path / "older.ckpt")
    resume = ["fit", *common, f"--ckpt_path={tmp_path / 'older.ckpt'}"]
    message = cli_error(
        [*resume, *csv_run(tmp_path, "refused"), "--model.optimization.decay_norms_and_biases=false"], capsys
    )
    assert message.count("\n") == 1, message
    # the tiny ViT's parameters: the embeddings' class token, positions and patch projection (weight and bias), and
    # 16 a layer (query, key, value, attention output, MLP in and out: a weight and a bias each; two norms of 2),
    # the final norm's 2 and the head's weight and bias; norms and biases: 10 a layer, 4 outside the layers
    layers = TINY_VIT["num_hidden_layers"]
    every, exempt = 4 + 16 * layers + 2 + 2, 10 * layers + 1 + 2 + 1
    assert f"the checkpoint's optimizer state has parameter groups of [{every}] tensors" in message
    advice = "resume with the checkpoint's model.optimization.layer_decay"
    assert f"this run's options make [{every - exempt}, {exempt}]: {advice}" in message
    run_cli([*resume, *csv_run(tmp_path, "resumed")])  # without the option it resumes, with the default
    with open(version_dir(tmp_path / "resumed", 0) / "metrics.csv") as f:
        assert {row["epoch"] for row in csv.DictReader(f)} - {""} == {"1"}  # the second epoch only: resumed


def test_layer_decay_and_one_cycle_sized_to_the_run(sample_root: Path, tmp_path: Path) -> None:
    """The rates the optimizer used, per group, at each of the 18 steps (9 an epoch, 2 epochs)."""
    schedule = [
        "--model.scheduler=OneCycleLR",
        "--model.scheduler.max_lr=0.01",
        "--model.optimization.scheduler_interval=step",
    ]
    monitor = ["--trainer.callbacks+=LearningRateMonitor", "--trainer.callbacks.logging_interval=step"]
    args = [*FAST, *TINY_MODEL, *schedule, *monitor, "--model.optimizer=AdamW", "--model.optimization.layer_decay=0.5"]
    args.append("--trainer.max_epochs=2")
    run_cli(["fit", *args, "--trainer.log_every_n_steps=1", f"--data.root={sample_root}", *csv_run(tmp_path, "logs")])
    with open(version_dir(tmp_path / "logs", 0) / "metrics.csv") as f:
        rows = sorted((r for r in csv.DictReader(f) if r.get("lr-AdamW/pg1")), key=lambda r: int(r["step"]))
    head = [float(r["lr-AdamW/pg4"]) for r in rows]  # groups: embeddings, layer 0, layer 1, norm + head
    reference = torch.optim.lr_scheduler.OneCycleLR(torch.optim.AdamW([torch.zeros(1)]), 0.01, total_steps=18)
    expected = []
    for _ in range(18):
        expected.append(reference.get_last_lr()[0])
        reference.optimizer.step()
        reference.step()
    assert head == pytest.approx(expected, rel=1e-6)
    assert [float(r["lr-AdamW/pg1"]) for r in rows] == pytest.approx([lr / 8 for lr in expected], rel=1e-6)


@pytest.mark.slow  # an end-to-end run: the full suite
def test_ema_weights_are_validated_checkpointed_and_exported(sample_root: Path, tmp_path: Path) -> None:
    ema = ["--trainer.callbacks+=EMAWeightAveraging", "--trainer.callbacks.decay=0.5"]
    common = [*FAST, *TINY_MODEL, f"--data.root={sample_root}"]
    run_cli(["fit", *common, *ema, *csv_run(tmp_path, "fit"), "--trainer.max_epochs=2"])
    run = version_dir(tmp_path / "fit", 0)
    saved = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    averaged, current = saved["state_dict"], saved["current_model_state"]
    assert any(not torch.equal(averaged[key], current[key]) for key in averaged)
    best_val_loss = next(v["best_model_score"] for k, v in saved["callbacks"].items() if "'val_loss'" in k)
    # validating the checkpoint's (averaged) weights gives the val_loss the fit saw: it validated the average
    run_cli(["validate", *common, *csv_run(tmp_path, "val"), f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}"])
    assert read_metrics(version_dir(tmp_path / "val", 0))["val_loss"] == pytest.approx(best_val_loss.item(), rel=1e-5)
    exported = load_file(run / "huggingface" / "model.safetensors")
    assert torch.equal(exported["classifier.weight"], averaged["net.classifier.weight"])


def test_every_fit_logs_images_per_second_and_flops(sample_root: Path, tmp_path: Path) -> None:
    args = [*FAST, *TINY_MODEL, "--throughput.window_size=3", "--throughput.peak_flops=1e9"]
    args += ["--trainer.log_every_n_steps=1", "--trainer.max_epochs=1"]
    cli = build_cli(["fit", *args, f"--data.root={sample_root}", *csv_run(tmp_path, "logs")])
    metrics = read_metrics(version_dir(tmp_path / "logs", 0))
    assert metrics["train/device/samples_per_sec"] > 0
    # the tiny ViT by hand (a multiply-add is 2 FLOPs): 32 px in patches of 8 is 16 tokens + [CLS]
    tokens, width, hidden, layers = 17, TINY_VIT["hidden_size"], TINY_VIT["intermediate_size"], 2
    per_layer = 2 * tokens * width * width * 4 + 2 * 2 * tokens * tokens * width + 2 * 2 * tokens * width * hidden
    forward = 2 * 16 * (3 * 8 * 8) * width + layers * per_layer + 2 * width * len(cli.model.class_names)
    flops_per_image = metrics["train/device/flops_per_sec"] / metrics["train/device/samples_per_sec"]
    assert flops_per_image == pytest.approx(3 * forward)  # forward + backward (twice the forward)
    assert metrics["train/device/mfu"] == pytest.approx(metrics["train/device/flops_per_sec"] / 1e9)


def test_bf16_weights_train_from_uint8_batches(sample_root: Path, tmp_path: Path) -> None:
    """bf16-true keeps the network in bf16: the model's float32 input follows it."""
    args = [*FAST, *TINY_MODEL, "--trainer.precision=bf16-true", "--trainer.max_epochs=1"]
    args += ["--trainer.limit_train_batches=2", f"--data.root={sample_root}", *csv_run(tmp_path, "logs")]
    cli = build_cli(["fit", *args])
    assert next(cli.model.net.parameters()).dtype == torch.bfloat16
    assert read_metrics(version_dir(tmp_path / "logs", 0))["val_loss"] > 0
