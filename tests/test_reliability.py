"""Every failure a user can cause gives one clear line and loses nothing; runs resume; DDP works."""

import csv
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml
from conftest import FAST, REPO, TINY_VIT, cli_error, read_metrics, run_cli, version_dir, write_config
from rasterio.transform import from_origin
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from eurosat_finetune.cli.known_messages import SHOW_ALL

TINY_MODEL = ["--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]


def one_line(message: str) -> str:
    assert message.startswith("eurosat: error: ") and message.count("\n") == 1, message
    return message


def test_missing_root_and_empty_folders(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nowhere"
    message = one_line(cli_error(["fit", *FAST, *TINY_MODEL, f"--data.root={missing}"], capsys))
    assert f"data.root='{missing}'" in message and "data.download.enabled=true" in message

    no_classes = tmp_path / "no-classes"
    (no_classes / "docs").mkdir(parents=True)
    (no_classes / "readme.txt").write_text("hi")
    assert "no images found" in one_line(cli_error(["fit", *FAST, *TINY_MODEL, f"--data.root={no_classes}"], capsys))


def test_class_folder_without_images(sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = shutil.copytree(sample_root / "EuroSAT_RGB", tmp_path / "data", ignore=shutil.ignore_patterns(".*"))
    (root / "Glacier").mkdir()
    (root / "Glacier" / "notes.txt").write_text("no images here")
    message = one_line(cli_error(["fit", *FAST, *TINY_MODEL, f"--data.root={root}"], capsys))
    assert f"class folder {root / 'Glacier'} holds no images" in message


def test_bad_checkpoint_paths(sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["test", *FAST, f"--data.root={sample_root}"]
    missing = tmp_path / "missing.ckpt"
    message = one_line(cli_error([*base, "--ckpt_path", str(missing)], capsys))
    assert f"--ckpt_path {missing}: no such file" in message and "best.ckpt" in message
    not_a_checkpoint = tmp_path / "notes.ckpt"
    not_a_checkpoint.write_text("these are my notes")
    message = one_line(cli_error([*base, "--ckpt_path", str(not_a_checkpoint)], capsys))
    assert f"--ckpt_path {not_a_checkpoint} is not a checkpoint" in message
    assert not_a_checkpoint.read_text() == "these are my notes"
    tensors = tmp_path / "weights.ckpt"
    torch.save({"weights": torch.zeros(2)}, tensors)
    assert "holds no model state_dict" in one_line(cli_error([*base, "--ckpt_path", str(tensors)], capsys))


@pytest.fixture(scope="module")
def checkpoint(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    logs = tmp_path_factory.mktemp("reliability")
    config = write_config(logs / "run.yaml", sample_root, logs, max_epochs=1)
    run_cli(["fit", "--config", str(config), *FAST, *TINY_MODEL])
    return version_dir(logs, 0) / "checkpoints" / "best.ckpt"


@pytest.mark.slow  # an end-to-end run: the full suite
def test_model_options_that_do_not_fit_the_checkpoint_are_one_line(
    checkpoint: Path, sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A checkpoint written before ``model_config`` (its network in ``vit_config``, its options flat) evaluated
    with options of another ViT: one line naming the option to drop, not a page of ``size mismatch`` lines."""
    saved = torch.load(checkpoint, weights_only=True)
    hparams = saved["hyper_parameters"]
    architecture = hparams.pop("network")["architecture"]
    hparams["model_name_or_path"] = None
    hparams["vit_config"] = {k: v for k, v in architecture.items() if k != "model_type"}
    old = tmp_path / "old.ckpt"
    torch.save(saved, old)
    wider = json.dumps({**TINY_VIT, "hidden_size": 48})
    args = ["test", *FAST, f"--data.root={sample_root}", f"--model.model_config={wider}", f"--ckpt_path={old}",
            f"--trainer.default_root_dir={tmp_path}"]  # fmt: skip
    # the tiny ViT's tensors: 4 of the embeddings, 16 a layer, the final norm's 2 and the head's 2; a wider one
    # changes all of them but each layer's MLP input bias (intermediate_size long) and the head's bias (one a class)
    differ = 4 + (16 - 1) * TINY_VIT["num_hidden_layers"] + 2 + 1
    assert one_line(cli_error(args, capsys)) == (
        "eurosat: error: the checkpoint's network does not fit the one the model options build "
        f"({differ} tensors differ, e.g. net.vit.embeddings.cls_token: [1, 1, 32] in the checkpoint, [1, 1, 48] "
        "here); model.network.config_overrides differs from the checkpoint's: drop it (and any config's model "
        "group) to take the checkpoint's\n"
    )
    run_cli([*args[:-3], f"--ckpt_path={old}", f"--trainer.default_root_dir={tmp_path}"])  # without it: works


def test_checkpoint_with_other_classes_is_refused(
    checkpoint: Path, sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    other = tmp_path / "other"
    for name in ("Forest", "River", "SeaLake"):
        shutil.copytree(sample_root / "EuroSAT_RGB" / name, other / name)
    (other / "River").rename(other / "Wetland")
    args = ["test", *FAST, f"--data.root={other}", "--data.split.allow_change=true", "--ckpt_path", str(checkpoint)]
    message = one_line(cli_error(args, capsys))
    assert "['AnnualCrop', 'Forest'" in message and "['Forest', 'SeaLake', 'Wetland']" in message
    assert not list(other.glob(".*"))  # refused before the images were decoded into a cache


@pytest.mark.slow  # the full suite
def test_model_that_cannot_be_loaded_offline(
    sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, offline_hub: Path
) -> None:
    """A folder that is not there, and a hub name offline with an empty cache (in this process, through
    huggingface_hub's constants: test_backbones.py restores a model in a fresh offline process)."""
    missing = tmp_path / "no-such-model"
    message = one_line(
        cli_error(["fit", *FAST, f"--data.root={sample_root}", f"--model.network.pretrained={missing}"], capsys)
    )
    assert f"cannot load model.network.pretrained='{missing}'" in message and "save_pretrained" in message

    command = ["fit", *FAST, f"--data.root={sample_root}", f"--trainer.default_root_dir={tmp_path}"]
    stderr = cli_error([*command, "--model.network.pretrained=google/vit-base-patch16-224"], capsys)
    last = one_line(stderr).strip()
    assert last.startswith("eurosat: error: cannot load model.network.pretrained='google/vit-base-patch16-224'")
    assert "local directory" in last and "Traceback" not in stderr
    assert not (offline_hub / "hub").exists()


def test_config_typos_and_wrong_types_reach_the_user(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """One line each: a typo with the closest known names (cli/typos.py), a wrong type with the value refused."""
    typo = "eurosat: error: unrecognized option --data.batchsize; did you mean --data.loader.batch_size?\n"
    assert cli_error(["fit", "--data.batchsize=8"], capsys) == typo
    config = tmp_path / "typo.yaml"
    config.write_text(yaml.safe_dump({"data": {"roots": "data"}}))
    assert "roots" in cli_error(["fit", "--config", str(config)], capsys)
    error = cli_error(["fit", "--data.loader.batch_size=many"], capsys)
    assert "data.loader.batch_size" in error and "many" in error


@pytest.mark.slow  # an end-to-end run: the full suite
def test_rerunning_never_overwrites(sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path / "run.yaml", sample_root, tmp_path, max_epochs=1, limit_train_batches=2)
    run_cli(["fit", "--config", str(config), *FAST, *TINY_MODEL])
    first = {p: p.read_bytes() for p in version_dir(tmp_path, 0).rglob("*") if p.is_file()}
    run_cli(["fit", "--config", str(config), *FAST, *TINY_MODEL])  # the same config again: a new version
    assert (version_dir(tmp_path, 1) / "checkpoints" / "last.ckpt").is_file()
    assert all(p.read_bytes() == content for p, content in first.items())

    pinned = ["--trainer.logger.init_args.version=0"]  # pointing a new fit at the first run's folder
    message = one_line(cli_error(["fit", "--config", str(config), *FAST, *TINY_MODEL, *pinned], capsys))
    assert f"{version_dir(tmp_path, 0)} already holds a run" in message
    fixed = tmp_path / "fixed"
    args = ["fit", "--config", str(config), *FAST, *TINY_MODEL, "--checkpoint.dirpath", str(fixed)]
    run_cli(args)
    kept = (fixed / "last.ckpt").read_bytes()
    assert f"{fixed} already holds checkpoints" in one_line(cli_error(args, capsys))
    assert (fixed / "last.ckpt").read_bytes() == kept
    assert all(p.read_bytes() == content for p, content in first.items())


@pytest.mark.slow  # an end-to-end run: the full suite
def test_resuming_a_run_keeps_what_it_wrote(sample_root: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "run.yaml", sample_root, tmp_path, max_epochs=1, limit_train_batches=2)
    run_cli(["fit", "--config", str(config), *FAST, *TINY_MODEL])
    run = version_dir(tmp_path, 0)
    first = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    resume = ["fit", "--config", str(config), *FAST, *TINY_MODEL, "--export.after_fit=false"]
    resume += ["--trainer.max_epochs=2", "--ckpt_path"]
    run_cli([*resume, str(run / "checkpoints" / "last.ckpt")])
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    assert (run / "config.yaml").read_bytes() == first["config.yaml"]
    assert (run / "metrics.before-resume1.csv").read_bytes() == first["metrics.csv"]  # CSVLogger deletes it
    assert read_metrics(run)["epoch"] == 1 and (run / "config.resume1.yaml").is_file()

    run_cli([*resume[:-2], "--trainer.max_epochs=3", "--ckpt_path", "last"])  # Lightning's "last": the latest run
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2
    assert (run / "config.resume2.yaml").is_file() and (run / "metrics.before-resume2.csv").is_file()


@pytest.mark.slow  # an end-to-end run: the full suite
def test_extending_a_finished_run_keeps_its_earlier_export_aside(sample_root: Path, tmp_path: Path) -> None:
    """Training a finished run longer: its export, like its metrics, is kept aside, and the new one is
    written where the run keeps it; checkpoints and the best score go on in the same folder."""
    config = write_config(tmp_path / "run.yaml", sample_root, tmp_path, max_epochs=2, limit_train_batches=2)
    run_cli(["fit", "--config", str(config), *FAST, *TINY_MODEL])
    run = version_dir(tmp_path, 0)
    exported = {p.name: p.read_bytes() for p in (run / "huggingface").iterdir()}
    best_before = checkpoint_score(run / "checkpoints" / "best.ckpt")
    longer = ["fit", "--config", str(config), *FAST, *TINY_MODEL, "--trainer.max_epochs=4"]
    run_cli([*longer, f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}"])
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]
    kept = run / "huggingface.before-resume1"
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == exported
    assert "4 epoch(s)" in (run / "huggingface" / "README.md").read_text()  # the new export, of the longer run
    assert "2 epoch(s)" in (kept / "README.md").read_text()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 3
    assert checkpoint_score(run / "checkpoints" / "best.ckpt") <= best_before  # the best so far, not the last
    assert (run / "metrics.before-resume1.csv").is_file() and (run / "config.resume1.yaml").is_file()

    run_cli([*longer[:-1], "--trainer.max_epochs=5", "--ckpt_path=last"])  # and once more
    assert (run / "huggingface.before-resume2").is_dir() and (run / "huggingface" / "config.json").is_file()


def checkpoint_score(path: Path) -> float:
    saved = torch.load(path, weights_only=True)["callbacks"]
    return next(float(v["best_model_score"]) for k, v in saved.items() if "'val_loss'" in k)


def test_run_folders_are_claimed_once_each(tmp_path: Path) -> None:
    """Runs started together in one folder each make their version_N with mkdir, which only one can do."""
    from concurrent.futures import ThreadPoolExecutor

    from eurosat_finetune.cli import run_claim

    root = tmp_path / "runs" / "demo"
    (root / "version_0").mkdir(parents=True)  # an earlier run
    (root / "version_0" / "config.yaml").write_text("an earlier run")
    with ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(lambda _: run_claim.claim_version(root), range(8)))
    assert sorted(versions) == list(range(1, 9))
    (root / "version_3" / "predictions.csv").write_text("a run that wrote a result")
    for started in ("config.yaml", "hparams.yaml", "events.out.tfevents.1.host.2.0"):  # what every run writes first
        (root / "version_5" / started).write_text("")
    # a command stopped by a user error gives back the folders it made that hold no result
    run_claim.release_unused_claims()
    assert sorted(p.name for p in root.iterdir()) == ["version_0", "version_3"]


@pytest.mark.slow  # an end-to-end run: the full suite
def test_outputs_are_checked_before_any_work(sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An existing export, predictions file or test report is refused before the data is even decoded."""
    config = write_config(tmp_path / "run.yaml", sample_root, tmp_path / "logs", max_epochs=1, limit_train_batches=1)
    run_cli(["fit", "--config", str(config), *FAST, *TINY_MODEL])
    checkpoint = version_dir(tmp_path / "logs", 0) / "checkpoints" / "best.ckpt"
    data = tmp_path / "data"  # a copy of the images without their decode cache
    shutil.copytree(sample_root / "EuroSAT_RGB", data / "EuroSAT_RGB", ignore=shutil.ignore_patterns(".*"))
    args = ["--config", str(config), *FAST, f"--data.root={data}"]

    export = tmp_path / "export"
    export.mkdir()
    (export / "model.safetensors").write_text("an earlier export")
    for command in (["fit", *TINY_MODEL], ["test", "--export.after_test=true", "--ckpt_path", str(checkpoint)]):
        message = one_line(cli_error([*command, *args, f"--export.dirpath={export}"], capsys))
        assert f"{export} already holds files; choose another --export.dirpath" in message
    output = tmp_path / "predictions.csv"
    output.write_text("earlier predictions")
    predict = ["predict", *args, f"--predictions.output={output}", "--ckpt_path", str(checkpoint)]
    message = one_line(cli_error(predict, capsys))
    assert f"{output} already exists; choose another --predictions.output" in message
    run = version_dir(tmp_path / "logs", 0)  # a test pointed at the fit's own folder, which has no report yet
    report = run / "confusion_matrix.png"
    report.write_bytes(b"an earlier report")
    test = ["test", *args, "--ckpt_path", str(checkpoint), "--trainer.logger.init_args.version=version_0"]
    message = one_line(cli_error(test, capsys))
    assert f"{report} already exists; choose another run folder or move it" in message

    assert not list(data.rglob(".*")) and output.read_text() == "earlier predictions"
    assert report.read_bytes() == b"an earlier report"
    assert [p.name for p in export.iterdir()] == ["model.safetensors"]
    assert sorted(p.name for p in (tmp_path / "logs" / "lightning_logs").iterdir()) == ["version_0"]


def test_unwritable_output_fails_before_training(
    sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    args = ["fit", *FAST, *TINY_MODEL, f"--data.root={sample_root}", "--trainer.logger=CSVLogger"]
    message = one_line(cli_error([*args, f"--trainer.logger.save_dir={blocker / 'logs'}"], capsys))
    assert f"cannot write to {blocker / 'logs'}" in message and "save_dir" in message
    assert blocker.read_text() == "not a folder"


@pytest.mark.slow
def test_killed_fit_resumes_into_its_own_run(
    sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill -9 a fit after its best epoch, resume from its last.ckpt: the run continues in its own folder
    and TensorBoard run, and ends with the same weights, best.ckpt and export as a run never interrupted,
    flips, MixUp and CutMix included (each batch draws its own, wherever the run restarted)."""
    # the learning rate jumps 30x after epoch 2, so val_loss is lowest at epoch 2 and worse after
    common = [*FAST, *TINY_MODEL, "--seed_everything=7", "--trainer.deterministic=true", "--data.augment=true"]
    common += ["--model.loss.mixup_alpha=0.2", "--model.loss.cutmix_alpha=1.0"]  # one of the two per batch
    common += ["--model.optimizer=AdamW", "--model.optimizer.lr=0.01", "--model.scheduler=StepLR"]
    common += ["--model.scheduler.step_size=3", "--model.scheduler.gamma=30", "--trainer.logger=TensorBoardLogger"]
    fit = [sys.executable, "-m", "eurosat_finetune", "fit", f"--data.root={sample_root}", "--trainer.max_epochs=5"]
    fit += common

    run_cli([*fit[3:], f"--trainer.logger.save_dir={tmp_path / 'straight'}"])
    straight = version_dir(tmp_path / "straight", 0)
    val_losses = tensorboard_scalars(straight, "val_loss")
    assert len(val_losses) == 5 and min(val_losses) == val_losses[2] < min(val_losses[3:]), val_losses
    steps_per_epoch = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] // 5

    fit += [f"--trainer.logger.save_dir={tmp_path / 'killed'}"]
    helpers = os.pathsep.join([str(REPO / "tests" / "helpers"), os.environ.get("PYTHONPATH", "")])
    kill = ["--trainer.callbacks+=kill.KillAtStep", f"--trainer.callbacks.step={3 * steps_per_epoch + 3}"]
    env = {**os.environ, "PYTHONPATH": helpers}
    result = subprocess.run([*fit, *kill], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == -9, result.stderr[-2000:]
    run = version_dir(tmp_path / "killed", 0)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2
    assert not (run / "huggingface").exists()

    monkeypatch.setenv(SHOW_ALL, "1")  # the command would silence Lightning's warning (cli/known_messages.py)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_cli([*fit[3:], "--ckpt_path", str(run / "checkpoints" / "last.ckpt")])
    assert not [w for w in caught if "dirpath has changed" in str(w.message)]
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]
    for name, epoch in (("last", 4), ("best", 2)):
        expected = torch.load(straight / "checkpoints" / f"{name}.ckpt", weights_only=True)
        actual = torch.load(run / "checkpoints" / f"{name}.ckpt", weights_only=True)
        assert actual["epoch"] == expected["epoch"] == epoch
        for key, value in expected["state_dict"].items():
            torch.testing.assert_close(actual["state_dict"][key], value, rtol=0, atol=0, msg=key)
    exported, reference = (load_file(d / "huggingface" / "model.safetensors") for d in (run, straight))
    for key, value in reference.items():
        torch.testing.assert_close(exported[key], value, rtol=0, atol=0, msg=key)
    # one TensorBoard run: an event file from each process, and the HPARAMS one written at the end, as the
    # straight run's; the first config is kept
    assert len(list(run.glob("events.out.tfevents.*"))) == len(list(straight.glob("events.out.tfevents.*"))) + 1 == 3
    assert tensorboard_scalars(run, "val_loss") == val_losses
    # the HPARAMS figures are best.ckpt's validation's, which ran before the kill: the record came back with it
    for tag in ("hp/val_loss", "hp/val_acc", "hp/val_macro_f1"):
        assert tensorboard_scalars(run, tag) == tensorboard_scalars(straight, tag) != [], tag
    assert (run / "config.yaml").is_file() and (run / "config.resume1.yaml").is_file()


def tensorboard_scalars(run: Path, tag: str) -> list[float]:
    """The values TensorBoard shows for ``tag`` in a run folder, in step order (all event files read)."""
    events = EventAccumulator(str(run))
    events.Reload()
    return [event.value for event in sorted(events.Scalars(tag), key=lambda event: event.step)]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_counts_every_image_once(sample_root: Path, tmp_path: Path) -> None:
    """Test and predict on 2 CPU processes (Lightning's spawner): the test metrics of 21 images (odd, and
    uneven batches: 11 + 10 images in batches of 5) equal one process's; new images are each classified once
    and a scene's map, of overlapping windows and an edge no window fits, is the one a single process makes.
    (test_launchers.py fits on two ranks under torchrun and compares their validation with one process's.)"""
    data = [f"--data.root={sample_root}", "--data.split.val_fraction=0.105", "--data.split.test_fraction=0.105"]
    data += ["--data.loader.num_workers=0", "--data.loader.batch_size=5"]
    quiet = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]

    def logged(name: str) -> list[str]:
        return ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp_path / name}", *data, *quiet]

    run_cli(["fit", "--trainer.accelerator=cpu", "--trainer.max_epochs=1", *TINY_MODEL, *logged("single")])
    best = version_dir(tmp_path / "single", 0) / "checkpoints" / "best.ckpt"
    new = tmp_path / "new"
    new.mkdir()
    for image in sorted((sample_root / "EuroSAT_RGB").rglob("*.jpg"))[::9][:21]:
        shutil.copy(image, new / f"{image.parent.name}_{image.name}")
    pixels = np.random.default_rng(4).integers(0, 256, (3, 80, 112), dtype=np.uint8)  # 2.5 x 3.5 windows
    profile = {"driver": "GTiff", "height": 80, "width": 112, "count": 3, "dtype": "uint8", "crs": "EPSG:32632"}
    with rasterio.open(new / "s.tif", "w", transform=from_origin(500_000, 5_000_000, 10, 10), **profile) as dst:
        dst.write(pixels)
    scenes = [f"--data.predict_root={new}", "--data.maps.stride=16", "--maps.probabilities=true"]

    ddp = ["--config", str(REPO / "configs" / "ddp.yaml"), "--trainer.accelerator=cpu", "--trainer.devices=2"]
    for args in (
        ["test", "--ckpt_path", str(best)],
        ["predict", "--ckpt_path", str(best), *scenes, f"--predictions.output={tmp_path / 'ddp.csv'}"],
    ):
        command = [sys.executable, "-m", "eurosat_finetune", *args, *ddp, *logged("ddp")]
        result = subprocess.run(command, capture_output=True, text=True, timeout=400, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "ddp" / "lightning_logs").iterdir())
    assert [d.name for d in runs] == ["version_0", "version_1"]  # rank 1 wrote no run folders
    assert (runs[0] / "confusion_matrix.png").is_file()

    run_cli(["test", "--trainer.accelerator=cpu", "--ckpt_path", str(best), *logged("single")])
    test, single_test = read_metrics(runs[0]), read_metrics(version_dir(tmp_path / "single", 1))
    test_keys = [key for key in single_test if key.startswith("test_")]
    assert len(test_keys) == 4 + 10  # loss, acc, macro_acc, macro_f1 and a per-class accuracy per class
    for key in test_keys:
        assert test[key] == pytest.approx(single_test[key], rel=1e-6, abs=1e-7), key
    report = json.loads((runs[0] / "classification_report.json").read_text())
    assert report["macro avg"]["support"] == 21  # the confusion matrix counts each test image once
    # each image's prediction gathered from both processes (11 + 10) into the test set's order, as one writes it
    single_run = version_dir(tmp_path / "single", 1)
    ddp_rows = (runs[0] / "test_predictions.csv").read_text()
    assert ddp_rows == (single_run / "test_predictions.csv").read_text() and ddp_rows.count("\n") == 1 + 21
    assert report["intervals"] == json.loads((single_run / "classification_report.json").read_text())["intervals"]

    predict = ["predict", "--trainer.accelerator=cpu", "--ckpt_path", str(best), *scenes, *logged("single")]
    run_cli([*predict, f"--predictions.output={tmp_path / 'single.csv'}"])
    rows = {
        name: sorted(csv.DictReader((tmp_path / f"{name}.csv").read_text().splitlines()), key=lambda r: r["path"])
        for name in ("ddp", "single")
    }
    assert len(rows["ddp"]) == len({row["path"] for row in rows["ddp"]}) == 21
    for two, one in zip(rows["ddp"], rows["single"], strict=True):
        assert two["path"] == one["path"] and two["predicted_class"] == one["predicted_class"]
        assert float(two["probability"]) == pytest.approx(float(one["probability"]), abs=1e-6)
    maps = [runs[1] / "maps", version_dir(tmp_path / "single", 2) / "maps"]
    with rasterio.open(maps[0] / "s.probabilities.tif") as two, rasterio.open(maps[1] / "s.probabilities.tif") as one:
        assert two.read() == pytest.approx(one.read(), abs=1e-6)
    assert sorted(p.name for p in maps[0].iterdir()) == sorted(p.name for p in maps[1].iterdir())  # no parts left
