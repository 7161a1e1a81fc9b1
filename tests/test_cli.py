"""Real LightningCLI runs through ``main([...])`` in temp dirs, on a tiny ViT and real JPEGs."""

import hashlib
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import (
    FAST,
    REPO,
    TINY_VIT,
    accuracy_on_test_split,
    cli_error,
    read_metrics,
    run_cli,
    version_dir,
    write_config,
)

TINY_MODEL = ["--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]


@pytest.mark.slow  # four CLI runs
def test_fit_then_validate_test_predict_from_the_checkpoint(sample_root: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    config = write_config(tmp_path / "run.yaml", sample_root, logs)
    run_cli(["fit", "--config", str(config), *FAST, *TINY_MODEL])
    checkpoints = version_dir(logs, 0) / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
    best = checkpoints / "best.ckpt"
    saved = torch.load(best, weights_only=True)
    best_val_loss = next(v["best_model_score"] for k, v in saved["callbacks"].items() if "ModelCheckpoint" in k)

    run_cli(["validate", "--config", str(config), *FAST, "--ckpt_path", str(best)])
    validated = read_metrics(version_dir(logs, 1))
    assert validated["val_loss"] == pytest.approx(float(best_val_loss), rel=1e-5)  # the weights came back

    run_cli(["test", "--config", str(config), *FAST, "--ckpt_path", str(best)])
    with_config = read_metrics(version_dir(logs, 2))
    # no --config: the model comes from the checkpoint's hyperparameters, the rest from defaults
    no_config = tmp_path / "no-config"
    run_cli(
        [
            "test",
            *FAST,
            f"--data.root={sample_root}",
            "--trainer.logger=CSVLogger",
            f"--trainer.logger.save_dir={no_config}",
            "--ckpt_path",
            str(best),
        ]
    )
    without_config = read_metrics(version_dir(no_config, 0))
    assert with_config["test_acc"] == pytest.approx(accuracy_on_test_split(best, sample_root), abs=1e-6)
    assert without_config["test_acc"] == with_config["test_acc"]
    assert without_config["test_loss"] == pytest.approx(with_config["test_loss"], rel=1e-6)

    run_cli(["predict", "--config", str(config), *FAST, "--ckpt_path", str(best)])
    assert version_dir(logs, 3).is_dir()
    # nothing earlier was overwritten: each run got its own version dir
    assert (checkpoints / "best.ckpt").read_bytes() == best.read_bytes()
    assert all((version_dir(logs, n) / "config.yaml").is_file() for n in range(4))


def test_print_config_round_trips(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    printed = run_cli(["fit", "--print_config"], capsys)
    config = yaml.safe_load(printed)
    assert config["model"]["network"]["pretrained"] == "google/vit-base-patch16-224"
    assert config["model"]["optimizer"]["class_path"] == "torch.optim.Adam"
    assert config["model"]["optimizer"]["init_args"]["lr"] == 1e-4
    assert config["data"]["split"]["val_fraction"] == 0.1 and config["data"]["split"]["test_fraction"] == 0.2
    assert "class_names" not in config["model"]  # linked from the data, not configured twice
    saved = tmp_path / "printed.yaml"
    saved.write_text(printed)
    assert run_cli(["fit", "--config", str(saved), "--print_config"], capsys) == printed


def test_commands_in_one_process_each_parse_on_a_parser_of_their_own(
    sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The parser is built once per process (cli/parser_once.py) and each command takes a copy: two commands
    never share one, a ``--print_config`` refused while parsing is not printed by a later command, and a
    CLI class defined again (a notebook's cell run twice) gets a parser of its own."""
    from eurosat_finetune.cli.command import EuroSATCLI, build_cli
    from eurosat_finetune.data.datamodule import EuroSATDataModule
    from eurosat_finetune.model import ImageClassifier

    data = [f"--data.root={sample_root}", *TINY_MODEL]
    first, second = (build_cli([*data, f"--data.loader.batch_size={size}"], run=False) for size in (3, 5))
    assert first.parser is not second.parser
    assert (first.config.data.loader.batch_size, second.config.data.loader.batch_size) == (3, 5)
    assert first.parser.dump(second.config) == second.parser.dump(second.config)

    assert "batch_size: 32" in run_cli(["fit", "--print_config"], capsys)  # the parser is built by now
    assert "batch_size" in cli_error(["fit", "--print_config", "--data.loader.batch_size=0"], capsys)
    logs = ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp_path}", "--export.after_fit=false"]
    short = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"]
    printed = run_cli(["fit", *FAST, *TINY_MODEL, f"--data.root={sample_root}", *logs, *short], capsys)
    assert "seed_everything:" not in printed and "Run folder: " in printed  # it ran, printing no config

    def defined(note: str) -> type[EuroSATCLI]:
        class NotebookCLI(EuroSATCLI):  # the same name each time, as a cell run again defines it
            def add_arguments_to_parser(self, parser: Any) -> None:
                super().add_arguments_to_parser(parser)
                parser.add_argument("--note", default=note)

        return NotebookCLI

    for note in ("first", "second"):
        cli = defined(note)(ImageClassifier, EuroSATDataModule, args=data, run=False)
        assert cli.config.note == note


# the quick suite parses the configs a CPU runs; the full suite every config
QUICK_CONFIGS = {"demo.yaml", "fit.yaml", "cpu.yaml", "ms.yaml", "tiny_vit.yaml"}
assert {path.name for path in (REPO / "configs").glob("*.yaml")} >= QUICK_CONFIGS, "a quick config was renamed"


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(path, id=path.name, marks=[] if path.name in QUICK_CONFIGS else [pytest.mark.slow])
        for path in sorted((REPO / "configs").glob("*.yaml"))
    ],
)
def test_every_config_parses(config: Path, capsys: pytest.CaptureFixture) -> None:
    """Alone, each config parses, and every value it sets is the value the command runs with."""
    printed = yaml.safe_load(run_cli(["fit", "--config", str(config), "--print_config"], capsys))
    own = yaml.safe_load(config.read_text())
    assert own and set(own) <= set(printed)
    assert_sets(printed, own, config.parent)


def assert_sets(printed: object, own: object, folder: Path, key: str = "") -> None:
    """``own`` (a config's values) holds in ``printed`` (the full config): a config file named as a value
    (``model: models/tiny_vit.yaml``) by its contents, class_path specs by the arguments they give."""
    if isinstance(own, str) and own.endswith(".yaml") and isinstance(printed, dict):
        own = yaml.safe_load((folder / own).read_text())
    if isinstance(own, dict):
        assert isinstance(printed, dict), key
        for name, value in own.items():
            assert name in printed, f"{key}.{name} is not in the printed config"
            assert_sets(printed[name], value, folder, f"{key}.{name}")
    elif isinstance(own, list):
        assert isinstance(printed, list) and len(printed) == len(own), key
        for i, (got, value) in enumerate(zip(printed, own, strict=True)):
            assert_sets(got, value, folder, f"{key}[{i}]")
    else:
        assert printed == own, f"{key}: the config sets {own!r}, the command runs with {printed!r}"


BACKBONE_OVERLAYS = ["swin_tiny.yaml", "convnext_tiny.yaml", "dinov2_small.yaml", "efficientnet_b0.yaml"]


@pytest.mark.parametrize(
    "overlay", [BACKBONE_OVERLAYS[0], *(pytest.param(name, marks=pytest.mark.slow) for name in BACKBONE_OVERLAYS[1:])]
)  # the quick suite stacks one overlay, the full suite each
def test_backbone_overlays_stack_on_fit_yaml(overlay: str, capsys: pytest.CaptureFixture) -> None:
    """`eurosat fit --config configs/fit.yaml --config configs/<overlay>` is the whole command: the
    overlay sets the model, its size and learning rate, fit.yaml everything else. (Each family's
    loading, training and export is tested on a tiny model in test_backbones.py.)"""
    configs = REPO / "configs"
    command = ["fit", "--config", str(configs / "fit.yaml"), "--config", str(configs / overlay), "--print_config"]
    printed = yaml.safe_load(run_cli(command, capsys))
    own = yaml.safe_load((configs / overlay).read_text())["model"]
    assert printed["model"]["network"]["pretrained"] == own["network"]["pretrained"]
    assert printed["model"]["input"]["size"] == own["input"]["size"]
    optimizer = printed["model"]["optimizer"]
    assert optimizer["class_path"] == own["optimizer"]["class_path"]
    # every argument the overlay gives is run with; the others keep their defaults
    assert own["optimizer"]["init_args"].items() <= optimizer["init_args"].items()
    assert printed["data"]["download"]["enabled"] is True and printed["trainer"]["precision"] == "bf16-mixed"


def test_cpu_recipe_stacks_on_fit_yaml(capsys: pytest.CaptureFixture) -> None:
    """configs/cpu.yaml keeps fit.yaml's data and split, and replaces its model, precision and callbacks
    (no early stopping: the one-cycle schedule, sized to the run, needs all its steps)."""
    configs = REPO / "configs"
    command = ["fit", "--config", str(configs / "fit.yaml"), "--config", str(configs / "cpu.yaml"), "--print_config"]
    printed = yaml.safe_load(run_cli(command, capsys))
    network = printed["model"]["network"]
    assert network["pretrained"] is None and network["architecture"]["model_type"] == "resnet"
    assert printed["model"]["scheduler"]["class_path"] == "torch.optim.lr_scheduler.OneCycleLR"
    assert printed["model"]["scheduler"]["init_args"]["total_steps"] is None
    assert [c["class_path"].rsplit(".", 1)[-1] for c in printed["trainer"]["callbacks"]] == ["LearningRateMonitor"]
    assert printed["trainer"]["precision"] == "bf16-mixed" and printed["model"]["input"]["size"] == 96
    assert printed["trainer"]["logger"]["init_args"]["name"] == "cpu"
    assert printed["data"]["download"]["enabled"] is True
    assert printed["data"]["download"]["md5"] == "f46e308c4d50d4bf32fedad2d3d62f3b"


@pytest.mark.parametrize(
    "flag", [pytest.param("--model.optimizer", marks=pytest.mark.slow), "--optimizer"]
)  # the quick suite takes Lightning's own --optimizer; every config takes the other path
def test_optimizer_from_the_command_line(flag: str, sample_root: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "run.yaml", sample_root, tmp_path, max_epochs=1, limit_train_batches=2)
    run_cli(["fit", "--config", str(config), *FAST, *TINY_MODEL, flag, "AdamW", f"{flag}.lr", "0.0123"])
    saved = torch.load(version_dir(tmp_path, 0) / "checkpoints" / "last.ckpt", weights_only=True)
    group = saved["optimizer_states"][0]["param_groups"][0]
    assert group["lr"] == 0.0123
    assert group["decoupled_weight_decay"] is True  # AdamW, not Adam


@pytest.mark.slow
def test_fine_tune_from_a_deleted_directory_restores_offline(
    sample_root: Path, tiny_vit_dir: Path, tmp_path: Path, offline_hub: Path
) -> None:
    """The checkpoint alone, offline with an empty Hugging Face cache (in this process: test_backbones.py
    restores one family in a fresh one)."""
    pretrained = shutil.copytree(tiny_vit_dir, tmp_path / "pretrained")
    logs = tmp_path / "logs"
    config = write_config(tmp_path / "run.yaml", sample_root, logs, max_epochs=1)
    run_cli(["fit", "--config", str(config), *FAST, f"--model.network.pretrained={pretrained}"])
    best = version_dir(logs, 0) / "checkpoints" / "best.ckpt"
    assert torch.load(best, weights_only=True)["pretrained_from"] == str(pretrained)
    shutil.rmtree(pretrained)

    hf_home = offline_hub
    out = tmp_path / "offline"
    test = ["test", *FAST, f"--data.root={sample_root}", "--trainer.logger=CSVLogger"]
    run_cli([*test, f"--trainer.logger.save_dir={out}", "--ckpt_path", str(best)])
    metrics = read_metrics(version_dir(out, 0))
    assert metrics["test_acc"] == pytest.approx(accuracy_on_test_split(best, sample_root), abs=1e-6)
    assert not (hf_home / "hub").exists()


@pytest.mark.slow  # a download, then fit.yaml's whole run
def test_fit_yaml_downloads_and_fine_tunes(
    sample_root: Path,
    tiny_vit_dir: Path,
    tmp_path: Path,
    serve_dir,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """configs/fit.yaml as shipped, with the hub and Zenodo swapped for local stand-ins."""
    from conftest import zip_dataset

    archive = zip_dataset(sample_root, tmp_path / "served" / "EuroSAT_RGB.zip")
    monkeypatch.chdir(tmp_path)
    overrides = [
        f"--data.download.url={serve_dir(archive.parent)}/EuroSAT_RGB.zip",
        f"--model.network.pretrained={tiny_vit_dir}",
        "--model.input.size=32",
        "--trainer.max_epochs=1",
    ]
    fit = ["fit", "--config", str(REPO / "configs" / "fit.yaml"), *FAST, *overrides]
    # fit.yaml checks the md5 published for the real archive: this stand-in is refused and removed
    assert "not f46e308c4d50d4bf32fedad2d3d62f3b; the file was removed" in cli_error(fit, capsys)
    assert list(tmp_path.rglob("*.zip")) == [archive]  # only the served one
    run_cli([*fit, f"--data.download.md5={hashlib.md5(archive.read_bytes()).hexdigest()}"])
    assert len(list((tmp_path / "data" / "EuroSAT_RGB").rglob("*.jpg"))) == 200
    checkpoints = tmp_path / "runs" / "eurosat" / "version_0" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert list((tmp_path / "runs" / "eurosat" / "version_0").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_demo_yaml_learns_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # huggingface_hub read HF_HUB_OFFLINE when it was imported: its constant is what refuses every request now
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    run_cli(["fit", "--config", str(REPO / "configs" / "demo.yaml"), "--trainer.enable_progress_bar=false"])
    assert len(list((tmp_path / "data" / "demo" / "EuroSAT_RGB").rglob("*.jpg"))) == 1000
    run_dir = tmp_path / "runs" / "demo" / "version_0"
    best = run_dir / "checkpoints" / "best.ckpt"
    score = torch.load(best, weights_only=True)["callbacks"]
    best_val_loss = next(v["best_model_score"] for k, v in score.items() if "ModelCheckpoint" in k)
    assert best_val_loss < 1.0  # chance level is ln(10) = 2.3


def test_freeze_backbone_trains_only_the_head(sample_root: Path, tiny_vit_dir: Path, tmp_path: Path) -> None:
    from transformers import ViTForImageClassification

    config = write_config(tmp_path / "run.yaml", sample_root, tmp_path, max_epochs=1, limit_train_batches=3)
    model = [f"--model.network.pretrained={tiny_vit_dir}", "--model.network.freeze_backbone=true"]
    run_cli(["fit", "--config", str(config), *FAST, *model, "--data.augment=true"])
    saved = torch.load(version_dir(tmp_path, 0) / "checkpoints" / "last.ckpt", weights_only=True)
    assert len(saved["optimizer_states"][0]["param_groups"][0]["params"]) == 2  # classifier weight and bias
    pretrained = ViTForImageClassification.from_pretrained(tiny_vit_dir).state_dict()
    for key, value in pretrained.items():
        if key.startswith("vit."):
            assert torch.equal(saved["state_dict"][f"net.{key}"], value), key


def learning_rates(log_dir: Path) -> list[float]:
    """The learning rate LearningRateMonitor logged before each optimizer step, in step order."""
    import csv

    with open(log_dir / "metrics.csv") as f:
        rows = [row for row in csv.DictReader(f) if row.get("lr-AdamW")]
    return [float(row["lr-AdamW"]) for row in sorted(rows, key=lambda row: int(row["step"]))]


@pytest.mark.slow  # two fits, each with its own scheduler
def test_schedules_per_step_with_warmup_and_per_epoch(
    sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The learning rate each optimizer step used, as the optimizer had it (9 steps an epoch)."""
    monitor = ["--trainer.callbacks+=LearningRateMonitor", "--trainer.callbacks.logging_interval=step"]
    common = [*FAST, *TINY_MODEL, *monitor, "--trainer.log_every_n_steps=1", "--model.optimizer=AdamW"]
    common += ["--model.optimizer.lr=0.01", f"--data.root={sample_root}", "--trainer.logger=CSVLogger"]

    per_step = [
        "--model.scheduler=CosineAnnealingLR",
        "--model.scheduler.T_max=15",
        "--model.optimization.warmup_steps=3",
    ]
    per_step += ["--model.optimization.scheduler_interval=step", f"--trainer.logger.save_dir={tmp_path / 'step'}"]
    run_cli(["fit", *common, *per_step, "--trainer.max_epochs=2"])
    used = learning_rates(version_dir(tmp_path / "step", 0))
    warmup = [0.01 * (t + 1) / 3 for t in range(3)]
    cosine = [0.01 * (1 + math.cos(math.pi * k / 15)) / 2 for k in range(15)]
    assert used == pytest.approx(warmup + cosine, rel=1e-6)

    per_epoch = ["--model.scheduler=StepLR", "--model.scheduler.step_size=1", "--model.scheduler.gamma=0.5"]
    run_cli(["fit", *common, *per_epoch, "--trainer.max_epochs=2", f"--trainer.logger.save_dir={tmp_path / 'epoch'}"])
    assert learning_rates(version_dir(tmp_path / "epoch", 0)) == pytest.approx([0.01] * 9 + [0.005] * 9, rel=1e-6)

    data = tmp_path / "data"  # refused before the images are decoded
    shutil.copytree(sample_root / "EuroSAT_RGB", data / "EuroSAT_RGB", ignore=shutil.ignore_patterns(".*"))
    refused = [
        *common,
        *per_epoch,
        "--model.optimization.warmup_steps=3",
        f"--trainer.logger.save_dir={tmp_path / 'no'}",
    ]
    message = cli_error(["fit", *refused, f"--data.root={data}"], capsys).splitlines()[-1]
    assert message.startswith("eurosat: error: model.optimization.warmup_steps hands over to model.scheduler")
    assert not list((data / "EuroSAT_RGB").glob(".*"))


def test_python_m_enters_the_cli_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """``python -m eurosat_finetune`` runs ``main`` (and ``--version`` gives the installed version); its
    subprocess twin is test_run_outputs.py::test_console_script_and_module_enter_the_same_cli_with_its_help."""
    import runpy

    import eurosat_finetune

    monkeypatch.setattr(sys, "argv", ["eurosat", "--version"])
    with pytest.raises(SystemExit) as exit:
        runpy.run_module("eurosat_finetune", run_name="__main__")
    assert (
        exit.value.code == 0 and capsys.readouterr().out.strip() == f"eurosat-finetune {eurosat_finetune.__version__}"
    )


def test_enable_checkpointing_false_writes_no_checkpoint(sample_root: Path, tmp_path: Path) -> None:
    """Lightning refuses ModelCheckpoint callbacks then; the best and last groups stay, writing nothing."""
    config = write_config(tmp_path / "run.yaml", sample_root, tmp_path, max_epochs=1, limit_train_batches=2)
    run_cli(["fit", "--config", str(config), *FAST, *TINY_MODEL, "--trainer.enable_checkpointing=false"])
    run = version_dir(tmp_path, 0)
    assert (run / "metrics.csv").is_file() and not (run / "checkpoints").exists()
    assert (run / "huggingface" / "model.safetensors").is_file()  # the final weights, as no best was kept


@pytest.mark.parametrize(
    ("options", "fused"),
    [([], True), pytest.param(["--model.optimizer.init_args.fused=false"], False, marks=pytest.mark.slow)],
)
def test_adam_runs_fused_unless_the_config_says_otherwise(
    options: list[str], fused: bool, sample_root: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "run.yaml", sample_root, tmp_path, max_epochs=1, limit_train_batches=2)
    run_cli(["fit", "--config", str(config), *FAST, *TINY_MODEL, *options])
    saved = torch.load(version_dir(tmp_path, 0) / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["optimizer_states"][0]["param_groups"][0]["fused"] is fused


def test_an_optimizer_whose_config_chose_fused_or_foreach_is_kept() -> None:
    from eurosat_finetune.model.optimization import fused_where_supported

    parameters = [torch.nn.Parameter(torch.ones(3))]
    groups = [{"params": parameters}]
    for chosen in ({"fused": False}, {"foreach": True}):
        optimizer = torch.optim.AdamW(parameters, **chosen)
        assert fused_where_supported(optimizer, groups) is optimizer, chosen
    rebuilt = fused_where_supported(torch.optim.AdamW(parameters, lr=0.01), groups)
    assert rebuilt.defaults["fused"] is True and rebuilt.defaults["lr"] == 0.01


def test_no_fused_optimizer_where_lightning_clips_under_a_gradient_scaler() -> None:
    from lightning.pytorch import LightningModule, Trainer
    from lightning.pytorch.plugins import MixedPrecision

    from eurosat_finetune.model.optimization import may_fuse

    def attached(**settings: object) -> LightningModule:
        module = LightningModule()
        module.trainer = Trainer(accelerator="cpu", logger=False, **settings)
        return module

    # 16-mixed on a CPU becomes bf16-mixed unless its plugin (with a gradient scaler) is given outright
    assert not may_fuse(attached(plugins=[MixedPrecision("16-mixed", "cpu")], gradient_clip_val=1.0))
    assert may_fuse(attached(plugins=[MixedPrecision("16-mixed", "cpu")]))
    assert may_fuse(attached(precision="bf16-mixed", gradient_clip_val=1.0))
    assert may_fuse(LightningModule())  # outside a Trainer
