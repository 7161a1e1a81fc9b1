"""What a user sees after a run: the closing summary, validation samples, the HPARAMS figures, the
model card of the export, and the command's help and version."""

import re
import shlex
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
import yaml
from conftest import FAST, REPO, TINY_VIT, run_cli, wilson_by_hand
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from eurosat_finetune.data.loaders import LoaderOptions
from eurosat_finetune.outputs.validation_samples import WRONG, sample_grid, stratified_pick


@pytest.mark.slow
def test_console_script_and_module_enter_the_same_cli_with_its_help(capsys: pytest.CaptureFixture) -> None:
    """The console script, in a fresh process (where Python hides DeprecationWarnings): a documented command
    line with an option's old name runs, with one line saying its new name. The help says what the command
    does (not Lightning's generic line), in-process as ``python -m`` is in test_cli's
    test_python_m_enters_the_cli_in_process (a process costs 10 s of imports)."""
    script = Path(sys.executable).with_name("eurosat")
    command = [str(script), "fit", "--config", str(REPO / "configs" / "demo.yaml"), "--data.batch_size", "8"]
    shown = subprocess.run([*command, "--print_config"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert yaml.safe_load(shown.stdout)["data"]["loader"]["batch_size"] == 8
    warned = [line for line in shown.stderr.splitlines() if "warning" in line.lower()]
    assert len(warned) == 1 and warned[0].startswith(
        "eurosat: warning: data.batch_size is now data.loader.batch_size;"
    ), shown.stderr
    top_help = run_cli(["--help"], capsys)
    assert "Lightning Trainer command line tool" not in top_help
    assert "Fine-tune a pretrained image classifier" in top_help
    assert "configs/demo.yaml" in top_help and "docs/" in top_help
    fit_help = run_cli(["fit", "--help"], capsys)
    assert "--data.split.seed" in fit_help and "--model.network.pretrained" in fit_help


def test_stratified_pick_shows_every_class_and_the_same_images() -> None:
    labels = [label for label in range(10) for _ in range(30)]  # a validation split is ordered by class
    picked = stratified_pick(labels, 16)
    assert len(picked) == 16 and {labels[i] for i in picked} == set(range(10))
    assert picked == stratified_pick(labels, 16)
    assert [labels[i] for i in picked] == list(range(10)) + list(range(6))


def test_sample_grid_titles_and_frames() -> None:
    images = torch.zeros(3, 3, 8, 8, dtype=torch.uint8)
    fig = sample_grid(images, ["Forest", "River", "SeaLake"], ["Forest", "Highway", "SeaLake"], [0.91, 0.55, 0.7])
    axes = fig.axes
    titles = ["Forest\n→ Forest 0.91", "River\n→ Highway 0.55", "SeaLake\n→ SeaLake 0.70"]
    assert [ax.get_title() for ax in axes] == titles
    frames = [ax.spines["left"].get_linewidth() for ax in axes]
    assert frames == [1, 3, 1] and axes[1].title.get_color() == WRONG


EPOCHS = 2  # of the module's fit: each validates, and the best may be either


@pytest.fixture(scope="module")
def fitted(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`eurosat fit` with the demo's TensorBoard logger (no default hp_metric), 2 epochs, tiny ViT."""
    tmp = tmp_path_factory.mktemp("outputs")
    config = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp / "runs")
    config["model"] = {"network": {"pretrained": None, "architecture": {"model_type": "vit", **TINY_VIT}}}
    config["data"] = {"root": str(sample_root), "loader": {"batch_size": 16, "num_workers": 0}}
    config["trainer"]["max_epochs"] = EPOCHS
    (tmp / "run.yaml").write_text(yaml.safe_dump(config))
    printed = run_cli(["fit", "--config", str(tmp / "run.yaml"), *FAST[:4]], CaptureOut())
    return {"tmp": tmp, "run": tmp / "runs" / "demo" / "version_0", "printed": printed}


class CaptureOut:
    """A capsys stand-in for a module fixture: what the command printed to stdout."""

    def __init__(self) -> None:
        import io
        from contextlib import redirect_stdout

        self.buffer = io.StringIO()
        self.redirect = redirect_stdout(self.buffer)
        self.redirect.__enter__()

    def readouterr(self) -> "CaptureOut":
        self.redirect.__exit__(None, None, None)
        self.out = self.buffer.getvalue()
        return self


def logged_at_epoch_end(run: Path, epoch: int) -> dict[str, float]:
    """What TensorBoard holds for the end of ``epoch`` (9 training steps an epoch)."""
    events = EventAccumulator(str(run)).Reload()
    step = (epoch + 1) * 9 - 1
    return {tag: e.value for tag in events.Tags()["scalars"] for e in events.Scalars(tag) if e.step == step}


@pytest.mark.slow  # a fit, shared with the tests below: the full suite
def test_fit_summary_names_the_best_checkpoint_and_the_command(fitted: dict) -> None:
    run, printed = fitted["run"], fitted["printed"]
    best = run / "checkpoints" / "best.ckpt"
    epoch = torch.load(best, weights_only=True)["epoch"]
    val_loss = logged_at_epoch_end(run, epoch)["val_loss"]
    assert f"eurosat fit finished. Run folder: {run}" in printed
    assert f"best checkpoint: {best} (epoch {epoch}: " in printed and f"val_loss {val_loss:.4f}" in printed
    assert f"Hugging Face export: {run / 'huggingface'}" in printed
    command = re.search(r"evaluate it: +(eurosat test .*)", printed).group(1)
    assert command == f"eurosat test --config {run / 'config.yaml'} --ckpt_path {best}"
    earlier = set(run.parent.iterdir())  # the fit's, and those of tests of this module that ran before
    tested = run_cli([*shlex.split(command)[1:], *FAST[:4]], CaptureOut())  # the printed command works as printed
    [test_run] = set(run.parent.iterdir()) - earlier  # the test run's own folder, beside the fit's
    assert "eurosat test finished." in tested and "test_acc" in tested
    assert f"classification report (.txt, .json, .csv): {test_run / 'classification_report.txt'}" in tested


@pytest.mark.slow  # the module's fit: the full suite
def test_validation_samples_and_hparams_figures(fitted: dict) -> None:
    events = EventAccumulator(str(fitted["run"])).Reload()
    assert len(events.Images("val/samples")) == EPOCHS  # one grid per epoch, none in the sanity check
    tags = events.Tags()["scalars"]
    assert "hp_metric" not in tags  # the default -1 is off
    best = torch.load(fitted["run"] / "checkpoints" / "best.ckpt", weights_only=True)
    score = next(v["best_model_score"] for k, v in best["callbacks"].items() if "'val_loss'" in k)
    assert events.Scalars("hp/val_loss")[0].value == pytest.approx(score.item(), rel=1e-6)
    assert {"hp/val_acc", "hp/val_macro_f1"} <= set(tags)


@pytest.mark.slow  # the module's fit: the full suite
def test_model_card_holds_the_run_s_numbers(fitted: dict, sample_root: Path) -> None:
    run = fitted["run"]
    card = (run / "huggingface" / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["pipeline_tag"] == "image-classification" and metadata["library_name"] == "transformers"
    epoch = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["epoch"]
    logged = logged_at_epoch_end(run, epoch)
    low, high = wilson_by_hand(round(logged["val_acc"] * 20), 20)  # the 20 validation images of the split below
    acc = f"{logged['val_acc']:.4f} ({low:.4f} to {high:.4f})"
    figures = " | ".join([acc, *(f"{logged[key]:.4f}" for key in ("val_macro_f1", "val_loss"))])
    assert f"| validation (epoch {epoch}, the best) | {figures} |" in card
    assert "In brackets, 95% intervals: Wilson's for accuracy" in card
    assert "140 training, 20 validation, 40 test images" in card and ", seed 0)" in card
    assert "0 `AnnualCrop`" in card and "9 `SeaLake`" in card and "trained from scratch" in card
    assert 'pipeline("image-classification"' in card
    # the run's own data: a synthetic sample of 32 px images, not EuroSAT
    assert "a synthetic sample in EuroSAT layout (not real data): 32 x 32 px images" in card
    assert "Sentinel-2" not in card and "eurosat" not in metadata["tags"] and "datasets" not in metadata

    assert "test-time augmentation" not in card


@pytest.mark.slow  # an end-to-end test run with TTA and an export: the full suite
def test_a_card_says_which_figures_include_test_time_augmentation(fitted: dict) -> None:
    """Tested with TTA, the card says which figures include it, as the exported model has none."""
    run = fitted["run"]
    exported = fitted["tmp"] / "tested-export"
    best = run / "checkpoints" / "best.ckpt"
    printed = run_cli(["test", "--config", str(run / "config.yaml"), f"--ckpt_path={best}", "--export.after_test=true",
                       f"--export.dirpath={exported}", "--model.tta=true", *FAST[:4]], CaptureOut())  # fmt: skip
    test_acc = float(re.search(r"test_acc (\d\.\d+)", printed).group(1))
    tested_card = (exported / "README.md").read_text()
    low, high = wilson_by_hand(round(test_acc * 40), 40)  # the split's 40 test images
    assert f"| test, with test-time augmentation | {test_acc:.4f} ({low:.4f} to {high:.4f}) |" in tested_card
    assert "(with test-time augmentation)" in printed  # the summary's figures say so too
    assert "The test figures include test-time augmentation (`--model.tta true`)" in tested_card
    assert "The validation figures do not, nor does the exported model, which classifies each image once." in (
        tested_card
    )


@pytest.mark.parametrize("folder", ["EuroSAT_RGB", "fields"])
def test_export_outside_the_cli_describes_the_data_it_was_trained_on(
    folder: str, sample_root: Path, tmp_path: Path
) -> None:
    """HuggingFaceExport in a Trainer the CLI did not build (so no RunRecord): the card gives the last
    validation, and does not call three classes of other images EuroSAT, even in a folder named so."""
    from lightning.pytorch import Trainer

    from eurosat_finetune.data.datamodule import EuroSATDataModule
    from eurosat_finetune.model import ImageClassifier
    from eurosat_finetune.model.options import NetworkOptions, OptimizationOptions
    from eurosat_finetune.outputs.huggingface_export import HuggingFaceExport

    images = tmp_path / "data" / folder
    for name in ("Forest", "River", "SeaLake"):  # real JPEGs of three classes, no sample marker
        shutil.copytree(sample_root / "EuroSAT_RGB" / name, images / name)
    data = EuroSATDataModule(root=images, loader=LoaderOptions(batch_size=16, num_workers=0))
    model = ImageClassifier(
        data.class_names,
        network=NetworkOptions(pretrained=None, architecture={"model_type": "vit", **TINY_VIT}),
        optimizer=partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.05),
        optimization=OptimizationOptions(decay_norms_and_biases=folder == "fields"),
    )
    export = HuggingFaceExport(dirpath=tmp_path / "export")
    trainer = Trainer(max_epochs=1, accelerator="cpu", callbacks=[export], logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, datamodule=data)
    card = (tmp_path / "export" / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert f"| validation (the last) | {float(trainer.callback_metrics['val_acc']):.4f} |" in card
    assert "42 training, 6 validation, 12 test images" in card and "0 `Forest`, 1 `River`, 2 `SeaLake`" in card
    # not EuroSAT, whatever the folder's name: EuroSAT is recognised by its 27,000 files (data/patches/published.py)
    assert f"the images in {images}: 32 x 32 px images" in card and "Sentinel-2" not in card
    assert "eurosat" not in metadata["tags"] and "datasets" not in metadata
    assert "Classifying 32 x 32 px images like those it was trained on" in card
    # the configured weight decay, whether or not the head's last parameter group (its bias) is exempt
    spared = "" if folder == "fields" else " (none on norms and biases)"
    assert f"optimizer AdamW, learning rate 0.001, weight decay 0.05{spared}\n" in card
