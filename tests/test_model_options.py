"""The model's options in named groups: bad values refused when the command line is parsed, in one line; the
names they had before the groups (command lines, configs, checkpoints) translated, one warning each."""

import csv
import json
import re
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import FAST, REPO, TINY_VIT, cli_error, run_cli, version_dir, write_config
from PIL import Image

from eurosat_finetune.data.patches.synthetic import EUROSAT_CLASSES
from eurosat_finetune.errors import ConfigError
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.options import LossOptions, NetworkOptions, OptimizationOptions
from eurosat_finetune.renamed_options import RENAMED, RenamedOptionWarning, renamed_section

DATA = REPO / "tests" / "data"
B96CE77 = DATA / "image-classifier-b96ce77.ckpt"
V0_1_0 = DATA / "vit-classifier-0.1.0.ckpt"
# the options that kept their name and place when the others were grouped
KEPT = {"class_names", "optimizer", "scheduler", "tta", "input_bands", "weights", "_instantiator"}


def printed_model(args: list[str], capsys: pytest.CaptureFixture) -> tuple[dict, list[str]]:
    """The model section ``eurosat fit <args> --print_config`` prints, and the old names it warned of."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RenamedOptionWarning)
        printed = yaml.safe_load(run_cli(["fit", *args, "--print_config"], capsys))
    old = [str(w.message).split(" is now ")[0] for w in caught if issubclass(w.category, RenamedOptionWarning)]
    return printed["model"], old


def test_print_config_shows_the_model_in_named_groups(capsys: pytest.CaptureFixture) -> None:
    """class_names and input_bands are linked from the data, so not printed."""
    model, warned = printed_model(["--config", str(REPO / "configs" / "demo.yaml")], capsys)
    assert list(model) == ["network", "weights", "input", "optimizer", "scheduler", "optimization", "loss", "tta"]
    assert model["network"]["pretrained"] is None and model["network"]["architecture"]["hidden_size"] == 64
    assert model["loss"] == {"label_smoothing": 0.0, "class_weights": None, "mixup_alpha": 0.0, "cutmix_alpha": 0.0}
    assert not warned  # the configs use today's names


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("loss.label_smoothing", "1.0", "BelowOne: 1.0 does not conform to restriction v>=0 and v<1"),
        ("loss.mixup_alpha", "-0.2", "NonNegativeFloat: -0.2 does not conform to restriction v>=0"),
        ("loss.cutmix_alpha", "-1", "NonNegativeFloat: -1 does not conform to restriction v>=0"),
        ("optimization.scheduler_frequency", "0", "PositiveInt: 0 does not conform to restriction v>0"),
        ("optimization.warmup_steps", "-5", "NonNegativeInt: -5 does not conform to restriction v>=0"),
        ("optimization.layer_decay", "1.5", "UpToOne"),
        ("input.size", "0", "PositiveInt: does not conform to restriction v>0"),  # or null
    ],
)
def test_a_bad_value_is_refused_when_parsed_in_one_line(
    option: str, value: str, says: str, capsys: pytest.CaptureFixture
) -> None:
    message = cli_error(["fit", f"--model.{option}={value}"], capsys)
    assert message.count("\n") == 1 and message.startswith("eurosat: error: "), message
    assert f'"model.{option}"' in message and says in message
    assert message.endswith("(see eurosat fit --help)\n")


def test_a_negative_learning_rate_is_one_line_before_anything_is_built(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The optimizer's arguments are Lightning's OptimizerCallable, taken as given by the parser: the command
    refuses a negative rate before the data is provided (here the synthetic sample would be written) or the
    network built (the default ViT-B/16 would be downloaded); the module, built from Python, refuses it too."""
    data = [f"--data.root={tmp_path / 'data'}", "--data.synthetic_images_per_class=5"]
    message = cli_error(["fit", *FAST, *data, "--model.optimizer=AdamW", "--model.optimizer.lr=-0.1"], capsys)
    said = "model.optimizer.lr=-0.1 is negative: give a learning rate of 0 or more (e.g. 1e-4)"
    assert message == f"eurosat: error: {said}\n"
    assert not (tmp_path / "data").exists()
    with pytest.raises(ConfigError, match=re.escape(said)):
        ImageClassifier(list(EUROSAT_CLASSES), optimizer=partial(torch.optim.AdamW, lr=-0.1))


def test_an_architecture_with_a_pretrained_network_is_one_line(
    sample_root: Path, capsys: pytest.CaptureFixture
) -> None:
    """Refused when the group is made, before any network is: the pretrained one would be downloaded."""
    args = ["fit", *FAST, f"--data.root={sample_root}", f"--model.network.architecture={json.dumps(TINY_VIT)}"]
    message = cli_error(args, capsys)
    assert message.count("\n") == 1, message
    assert "model.network.architecture builds a new network but model.network.pretrained=" in message
    assert "set model.network.pretrained null to build the architecture" in message


def test_old_command_line_names_parse_as_the_new_ones(capsys: pytest.CaptureFixture) -> None:
    architecture = json.dumps({"model_type": "vit", **TINY_VIT})
    old = [
        "--model.model_name_or_path=null",
        f"--model.model_config={architecture}",
        "--model.image_size",
        "48",
        "--model.freeze_backbone=true",
        "--model.label_smoothing=0.1",
        "--model.mixup_alpha=0.2",
        "--model.scheduler_interval=step",
        "--model.warmup_steps=10",
        "--model.layer_decay=0.75",
    ]
    new = [
        "--model.network.pretrained=null",
        f"--model.network.architecture={architecture}",
        "--model.input.size",
        "48",
        "--model.network.freeze_backbone=true",
        "--model.loss.label_smoothing=0.1",
        "--model.loss.mixup_alpha=0.2",
        "--model.optimization.scheduler_interval=step",
        "--model.optimization.warmup_steps=10",
        "--model.optimization.layer_decay=0.75",
    ]
    translated, warned = printed_model(old, capsys)
    assert translated == printed_model(new, capsys)[0]
    assert translated["loss"]["label_smoothing"] == 0.1 and translated["network"]["architecture"]["hidden_size"] == 32
    assert sorted(warned) == sorted(arg[2:].split("=")[0] for arg in old if arg.startswith("--"))  # one each
    # without model_name_or_path null, model_config was the pretrained config's overrides
    overrides, _ = printed_model(['--model.model_config={"hidden_dropout_prob": 0.1}'], capsys)
    assert overrides["network"]["config_overrides"] == {"hidden_dropout_prob": 0.1}
    assert overrides["network"]["pretrained"] == "google/vit-base-patch16-224"
    # a key within it (evaluation.md's recipes said --model.model_config.depths): a field over the architecture
    cpu = ["--config", str(REPO / "configs" / "fit.yaml"), "--config", str(REPO / "configs" / "cpu.yaml")]
    deeper, warned = printed_model([*cpu, "--model.model_config.depths=[2, 2, 2, 2]"], capsys)
    assert deeper["network"]["config_overrides"] == {"depths": [2, 2, 2, 2]} and warned == ["model.model_config"]
    assert deeper["network"]["architecture"]["model_type"] == "resnet"


def test_old_weights_options_on_the_command_line_become_one_spec(capsys: pytest.CaptureFixture) -> None:
    url = "https://example.org/resnet18_s2-0123abcd.pth"
    described = ["--model.weights_model=resnet18", "--model.weights_bands=[B02, B03]"]
    described += ["--model.weights_mean", "[0, 0]", "--model.weights_std=[10000, 10000]"]
    old = ["--model.model_name_or_path=null", f"--model.weights={url}", *described]
    translated, warned = printed_model(old, capsys)
    spec = f"{{location: '{url}', timm_model: resnet18, bands: [B02, B03], mean: [0, 0], std: [10000, 10000]}}"
    new, _ = printed_model(["--model.network.pretrained=null", f"--model.weights={spec}"], capsys)
    assert translated == new
    assert new["weights"]["location"] == url and new["weights"]["bands"] == ["B02", "B03"]
    weights = ["model.weights_model", "model.weights_bands", "model.weights_mean", "model.weights_std"]
    assert warned == ["model.model_name_or_path", *weights]


@pytest.mark.parametrize("config", ["config-b96ce77.yaml", "config-0.1.0.yaml"])
def test_an_old_configs_model_section_parses_as_the_new_groups(
    config: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The model section of a config.yaml written before the groups (its data section is another matter)."""
    section = yaml.safe_load((DATA / config).read_text())["model"]
    (tmp_path / "old.yaml").write_text(yaml.safe_dump({"model": section}))
    grouped = {
        "network": {"pretrained": None, "architecture": section["model_config"]},
        "optimizer": section["optimizer"],
        "loss": {"label_smoothing": section["label_smoothing"]},
    }
    (tmp_path / "new.yaml").write_text(yaml.safe_dump({"model": grouped}))
    translated, warned = printed_model(["--config", str(tmp_path / "old.yaml")], capsys)
    assert translated == printed_model(["--config", str(tmp_path / "new.yaml")], capsys)[0]
    assert sorted(warned) == sorted(f"model.{key}" for key in set(section) - KEPT)


def expected_groups(hparams: dict) -> dict:
    """What the groups of a checkpoint's old flat hyperparameters hold, read off them one by one."""
    architecture = hparams.get("model_config") or hparams.get("vit_config")
    return {
        "network": NetworkOptions(pretrained=None, architecture=architecture),
        "loss": LossOptions(label_smoothing=hparams.get("label_smoothing", 0.0)),
        "optimization": OptimizationOptions(),
        "input": (hparams["image_size"], hparams["image_mean"], hparams["image_std"]),
    }


@pytest.mark.parametrize("checkpoint", [B96CE77, V0_1_0])
def test_an_old_checkpoint_loads_from_python_with_its_options_translated(checkpoint: Path) -> None:
    """Lightning would drop the old keys unread (and its instantiator refuse them): ``load_from_checkpoint``
    translates them first, one warning each."""
    saved = torch.load(checkpoint, weights_only=True)
    hparams = saved["hyper_parameters"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RenamedOptionWarning)
        model = ImageClassifier.load_from_checkpoint(checkpoint)
    warned = [str(w.message).split(" is now ")[0] for w in caught if issubclass(w.category, RenamedOptionWarning)]
    assert sorted(warned) == sorted(f"model.{key}" for key in set(hparams) - KEPT)
    expected = expected_groups(hparams)
    assert model.options.network == expected["network"] and model.options.loss == expected["loss"]
    assert model.options.optimization == expected["optimization"] and model.options.weights is None
    assert (model.image_size, model.image_mean, model.image_std) == expected["input"]
    assert model.class_names == list(EUROSAT_CLASSES)
    for key, value in model.net.state_dict().items():  # 0.1.0 kept the network in self.vit
        stored = saved["state_dict"].get(f"net.{key}", saved["state_dict"].get(f"vit.{key}"))
        torch.testing.assert_close(value, stored, rtol=0, atol=0, msg=key)
    # what it saves now holds the groups, plain, and loads as written
    resaved = {"hyper_parameters": dict(model.hparams)}
    model.on_save_checkpoint(resaved)
    assert resaved["hyper_parameters"]["loss"] == {**vars(expected["loss"])}
    assert not set(resaved["hyper_parameters"]) & {old.split(".")[1] for old in RENAMED}


def test_an_old_checkpoints_hyperparameters_translate_as_the_command_reads_them() -> None:
    """``--ckpt_path`` hands the hyperparameters to the parser's ``parse_object``, which translates them so."""
    hparams = torch.load(B96CE77, weights_only=True)["hyper_parameters"]
    with pytest.warns(RenamedOptionWarning):
        section = renamed_section("model", hparams)
    assert section["network"]["pretrained"] is None and section["network"]["architecture"] == hparams["model_config"]
    assert section["input"] == {"size": 32, "mean": [0.5] * 3, "std": [0.5] * 3}
    assert section["loss"]["label_smoothing"] == 0.1 and section["optimization"]["scheduler_interval"] == "epoch"
    assert section["weights"] is None and not set(section) & {old.split(".")[1] for old in RENAMED}


@pytest.mark.slow  # two end-to-end runs: the full suite
def test_a_checkpoint_of_b96ce77_tests_and_predicts(sample_root: Path, tmp_path: Path) -> None:
    """The checkpoint a fit wrote just before the options were grouped, with a config of today's keys."""
    config = write_config(tmp_path / "run.yaml", sample_root, tmp_path / "logs")
    common = ["--config", str(config), *FAST, f"--ckpt_path={B96CE77}"]
    with pytest.warns(RenamedOptionWarning):
        run_cli(["test", *common])
    with open(version_dir(tmp_path / "logs", 0) / "classification_report.csv") as f:
        report = {row["class"]: row for row in csv.DictReader(f)}
    assert set(EUROSAT_CLASSES) < set(report) and float(report["macro avg"]["support"]) == 40  # the test split
    forest = sample_root / "EuroSAT_RGB" / "Forest"
    run_cli(["predict", *common, f"--data.predict_root={forest}"])
    with open(version_dir(tmp_path / "logs", 1) / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["path"] for row in rows] == sorted(str(p) for p in forest.iterdir() if p.suffix == ".jpg")
    # the classes the checkpoint's network gives, as restored in Python
    model = ImageClassifier.load_from_checkpoint(B96CE77).eval()
    images = torch.stack([torch.from_numpy(np.array(Image.open(row["path"]))) for row in rows])
    with torch.no_grad():
        predicted = model(images.permute(0, 3, 1, 2)).argmax(dim=-1)
    assert [row["predicted_class"] for row in rows] == [model.class_names[i] for i in predicted]
