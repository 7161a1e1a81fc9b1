"""What a scientist reads after a run: metrics against scikit-learn, reports, predictions, exports."""

import csv
import json
import math
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import FAST, REPO, TINY_VIT, cli_error, read_metrics, run_cli, version_dir
from PIL import Image
from sklearn.metrics import accuracy_score, balanced_accuracy_score, classification_report, f1_score, recall_score
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from eurosat_finetune.data.datamodule import EuroSATDataModule
from eurosat_finetune.data.loaders import LoaderOptions
from eurosat_finetune.data.patches.published import EUROSAT_CLASSES
from eurosat_finetune.data.patches.split_choice import SplitChoice
from eurosat_finetune.data.patches.splits import stratified_split
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.renamed_options import RenamedOptionWarning


@pytest.fixture(scope="module")
def run(sample_root: Path, tiny_vit_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One fine-tune of the tiny 'pretrained' ViT at 48 px (interpolated position embeddings),
    logging to CSV and TensorBoard, then a test run of its best checkpoint."""
    tmp = tmp_path_factory.mktemp("evaluation")
    logs = tmp / "logs"
    config = {
        "trainer": {
            "max_epochs": 2,
            "logger": [
                {"class_path": "CSVLogger", "init_args": {"save_dir": str(logs)}},
                {"class_path": "TensorBoardLogger", "init_args": {"save_dir": str(logs), "name": "tb"}},
            ],
        },
        "model": {
            "network": {"pretrained": str(tiny_vit_dir)},
            "input": {"size": 48},
            "optimizer": {"class_path": "AdamW", "init_args": {"lr": 0.003}},
        },
        "data": {"root": str(sample_root)},
    }
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    run_cli(["fit", "--config", str(path), *FAST])
    best = version_dir(logs, 0) / "checkpoints" / "best.ckpt"
    run_cli(["test", "--config", str(path), *FAST, "--ckpt_path", str(best)])
    return {"config": path, "logs": logs, "best": best, "tmp": tmp}


def predictions_of(checkpoint: Path, sample_root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions on the test split, computed here without Lightning's loops."""
    model = ImageClassifier.load_from_checkpoint(checkpoint).eval()
    dm = EuroSATDataModule(root=sample_root, loader=LoaderOptions(num_workers=0))
    dm.setup("test")
    images = torch.stack([dm.test_dataset[i][0] for i in range(len(dm.test_dataset))])
    with torch.no_grad():
        preds = model(images).argmax(dim=-1).numpy()
    return np.asarray(dm.test_dataset.labels), preds


@pytest.mark.slow  # an end-to-end run: the full suite
def test_test_metrics_match_scikit_learn(run: dict, sample_root: Path) -> None:
    metrics = read_metrics(version_dir(run["logs"], 1))
    y_true, y_pred = predictions_of(run["best"], sample_root)
    assert metrics["test_acc"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-6)
    assert metrics["test_macro_acc"] == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-6)
    assert metrics["test_macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-6)
    per_class = recall_score(y_true, y_pred, average=None, labels=range(10), zero_division=0)
    for name, expected in zip(EUROSAT_CLASSES, per_class, strict=True):
        assert metrics[f"test_acc_{name}"] == pytest.approx(expected, abs=1e-6), name

    report_dir = version_dir(run["logs"], 1)
    report = json.loads((report_dir / "classification_report.json").read_text())
    expected = classification_report(
        y_true, y_pred, labels=range(10), target_names=list(EUROSAT_CLASSES), output_dict=True, zero_division=0
    )
    assert report.keys() - {"intervals"} == expected.keys()
    for key, scores in expected.items():
        assert report[key] == pytest.approx(scores), key
    assert "HerbaceousVegetation" in (report_dir / "classification_report.txt").read_text()
    with open(report_dir / "classification_report.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows[:10]] == list(EUROSAT_CLASSES)


@pytest.mark.slow  # an end-to-end run: the full suite
def test_confusion_matrix_png_and_tensorboard(run: dict) -> None:
    png = version_dir(run["logs"], 1) / "confusion_matrix.png"
    with Image.open(png) as image:
        image.verify()
        assert image.format == "PNG" and min(image.size) > 300
    events = EventAccumulator(str(run["logs"] / "tb" / "version_1")).Reload()
    assert "test/confusion_matrix" in events.Tags()["images"]


@pytest.mark.slow  # an end-to-end run: the full suite
def test_validation_samples_once_per_epoch(run: dict) -> None:
    events = EventAccumulator(str(run["logs"] / "tb" / "version_0")).Reload()
    assert len(events.Images("val/samples")) == 2  # two epochs, no sanity-check grid


@pytest.mark.slow  # an end-to-end run: the full suite
def test_predictions_csv_and_unreadable_files(run: dict, sample_root: Path, capsys: pytest.CaptureFixture) -> None:
    folder = run["tmp"] / "new-images"
    sources = sorted((sample_root / "EuroSAT_RGB").rglob("*_1.jpg"))[:4]
    (folder / "a" / "b").mkdir(parents=True)
    shutil.copy(sources[0], folder / "one.jpg")
    Image.open(sources[1]).save(folder / "a" / "two.png")
    Image.open(sources[2]).resize((50, 70)).save(folder / "a" / "b" / "three.tif")
    (folder / "a" / "broken.jpg").write_bytes(sources[3].read_bytes()[:200])
    (folder / "notes.txt").write_text("not an image")
    output = run["tmp"] / "predictions.csv"
    args = ["predict", "--config", str(run["config"]), *FAST, "--ckpt_path", str(run["best"])]
    no_dataset = f"--data.root={run['tmp'] / 'no-dataset-here'}"  # the checkpoint knows the classes
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image, not in .*broken\.jpg"):
        run_cli([*args, no_dataset, f"--data.predict_root={folder}", f"--predictions.output={output}"])
    with open(output) as f:
        rows = list(csv.DictReader(f))
    assert [Path(r["path"]).name for r in rows] == ["three.tif", "two.png", "one.jpg"]
    assert list(rows[0]) == ["path", "predicted_class", "probability", *EUROSAT_CLASSES]
    for row in rows:
        probs = np.array([float(row[c]) for c in EUROSAT_CLASSES])
        assert probs.sum() == pytest.approx(1, abs=1e-4)
        assert row["predicted_class"] == EUROSAT_CLASSES[probs.argmax()]
        assert float(row["probability"]) == pytest.approx(probs.max())
    before = output.read_bytes()
    message = cli_error([*args, f"--data.predict_root={folder}", f"--predictions.output={output}"], capsys)
    assert f"eurosat: error: {output} already exists" in message  # an earlier result is never overwritten
    assert output.read_bytes() == before


@pytest.mark.slow  # an end-to-end run: the full suite
def test_exported_model_runs_in_a_transformers_pipeline(run: dict, sample_root: Path) -> None:
    from transformers import pipeline

    export = version_dir(run["logs"], 0) / "huggingface"
    config = json.loads((export / "config.json").read_text())
    assert config["id2label"]["1"] == "Forest" and config["image_size"] == 48
    image = sorted((sample_root / "EuroSAT_RGB" / "River").glob("*.jpg"))[0]
    folder = run["tmp"] / "one-image"
    folder.mkdir()
    shutil.copy(image, folder / image.name)
    output = run["tmp"] / "one-prediction.csv"
    args = ["predict", "--config", str(run["config"]), *FAST, "--ckpt_path", str(run["best"])]
    run_cli([*args, f"--data.predict_root={folder}", f"--predictions.output={output}"])
    with open(output) as f:
        ours = next(csv.DictReader(f))
    scores = pipeline("image-classification", model=str(export), device="cpu")(str(image), top_k=len(EUROSAT_CLASSES))
    # every class's probability, not only the top one's label, which a near tie could flip: the
    # processor rounds the resized image to uint8, the model resizes in float, a little noise
    assert {s["label"]: s["score"] for s in scores} == pytest.approx(
        {c: float(ours[c]) for c in EUROSAT_CLASSES}, abs=1e-2
    )


@pytest.mark.slow  # an end-to-end run: the full suite
def test_split_guard_refuses_another_split(run: dict, capsys: pytest.CaptureFixture) -> None:
    args = ["test", "--config", str(run["config"]), *FAST, "--ckpt_path", str(run["best"])]
    message = cli_error([*args, "--data.split.seed=1"], capsys)
    assert re.search(r"trained on split \w+ .* data\.split\.seed=1 .*data\.split\.allow_change=true", message)
    assert message.count("\n") == 1  # one line, no traceback
    assert "data.split.test_fraction=0.3" in cli_error([*args, "--data.split.test_fraction=0.3"], capsys)
    run_cli([*args, "--data.split.seed=1", "--data.split.allow_change=true"])  # explicit override


def test_train_size_is_a_stratified_seeded_subset(sample_root: Path) -> None:
    def split(train_size: float | None = None) -> EuroSATDataModule:
        choice = SplitChoice(train_size=train_size)
        dm = EuroSATDataModule(root=sample_root, split=choice, loader=LoaderOptions(num_workers=0))
        dm.setup("fit")
        return dm

    full = split()
    for size, expected in ((10, 10), (30, 30), (0.5, 70), (140, 140)):
        dm = split(train_size=size)
        assert len(dm.train_dataset) == expected
        assert set(dm.train_dataset.files) <= set(full.train_dataset.files)
        counts = np.bincount(dm.train_dataset.labels, minlength=10)
        assert counts.max() - counts.min() <= 1, counts  # stratified
        assert dm.val_dataset.files == full.val_dataset.files and dm.test_dataset.files == full.test_dataset.files
        assert split(train_size=size).train_dataset.files == dm.train_dataset.files  # deterministic
    with pytest.raises(ValueError, match=r"data\.split\.train_size=5 .* between 10"):
        split(train_size=5)
    assert len(stratified_split([0] * 5 + [1] * 5, 0.2, 0.2, 0)[0]) == 6


@pytest.mark.slow  # a fit and a test per training-set size
def test_learning_curve_drives_the_cli(sample_root: Path, tmp_path: Path) -> None:
    from conftest import REPO

    from eurosat_finetune import learning_curve

    out = tmp_path / "curve"
    configs = ["--config", str(REPO / "configs" / "fit.yaml"), "--config", str(REPO / "configs" / "tiny_vit.yaml")]
    data = [f"--data.root={sample_root}", *FAST]
    tested = "--trainer.limit_test_batches=2"  # 32 of the test split's 40 images: the interval counts those
    rows = learning_curve.main(["--sizes", "10", "all", "--out", str(out), *configs, *data, tested])
    # its old option names are warned about where users see them, as by `eurosat` (Python hides DeprecationWarnings)
    assert ("default", None, RenamedOptionWarning, None, 0) in warnings.filters
    with open(out / "learning_curve.csv") as f:
        written = list(csv.DictReader(f))
    assert [int(r["train_images"]) for r in written] == [10, 140] == [r["train_images"] for r in rows]
    for size, row in zip(("10", "all"), written, strict=True):  # as each size's own test report (scikit-learn's)
        report = out / f"train_size_{size}" / "version_0" / "classification_report.json"
        assert float(row["test_acc"]) == pytest.approx(json.loads(report.read_text())["accuracy"], abs=1e-6), size
        # each point's 95% Wilson interval over the test images, worked out here by its formula
        n, accuracy, z = int(row["test_images"]), float(row["test_acc"]), 1.959964
        assert n == 32  # the 2 batches of 16 tested, of the 40 (20% of the sample's 200 images)
        centre = (accuracy + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z / (1 + z**2 / n) * (accuracy * (1 - accuracy) / n + z**2 / (4 * n**2)) ** 0.5
        assert float(row["test_acc_low"]) == pytest.approx(centre - half, abs=1e-5), size
        assert float(row["test_acc_high"]) == pytest.approx(centre + half, abs=1e-5), size
        assert float(row["test_acc_low"]) <= accuracy <= float(row["test_acc_high"])
    with Image.open(out / "learning_curve.png") as image:
        image.verify()
    assert (out / "train_size_10" / "version_0" / "confusion_matrix.png").is_file()
    assert not list(out.rglob("*.ckpt"))  # measurements only
    with pytest.raises(SystemExit, match="exists"):  # an earlier curve is never overwritten
        learning_curve.main(["--sizes", "10", "--out", str(out), *configs, *data])


def newest_run(logs: Path) -> Path:
    """The run folder of the CLI run just made (other tests of this module add runs to the same logs)."""
    return max((logs / "lightning_logs").glob("version_*"), key=lambda path: int(path.name.split("_")[1]))


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # end-to-end runs: the full suite
def test_each_test_image_s_prediction_and_two_models_compared_image_by_image(
    run: dict, sample_root: Path, capsys: pytest.CaptureFixture
) -> None:
    tested = version_dir(run["logs"], 1)
    y_true, y_pred = predictions_of(run["best"], sample_root)  # computed here, without Lightning's loops
    rows = rows_of(tested / "test_predictions.csv")
    assert [r["true"] for r in rows] == [EUROSAT_CLASSES[i] for i in y_true]
    assert [r["predicted"] for r in rows] == [EUROSAT_CLASSES[i] for i in y_pred]
    assert all(r["image"] == f"{r['true']}/{Path(r['image']).name}" for r in rows)  # below the class folders

    # two tiny ViTs on the same split: A not trained (learning rate 0), B trained for 8 epochs (about 95%)
    common = ["--model", str(REPO / "configs" / "models" / "tiny_vit.yaml"), f"--data.root={sample_root}", *FAST]
    common += [f"--trainer.default_root_dir={run['tmp'] / 'paired'}", "--export.after_fit=false"]
    runs = run["tmp"] / "paired" / "lightning_logs"
    run_cli(["fit", *common, "--model.optimizer.init_args.lr=0", "--trainer.max_epochs=1"])
    run_cli(["fit", *common, "--trainer.max_epochs=8"])
    a_checkpoint, b_checkpoint = (runs / f"version_{n}" / "checkpoints" / "best.ckpt" for n in (0, 1))
    run_cli(["test", *common, f"--ckpt_path={a_checkpoint}"])
    a_run = runs / "version_2"
    printed = run_cli(["test", *common, f"--ckpt_path={b_checkpoint}", f"--report.compare_with={a_run}"], capsys)
    b_run = runs / "version_3"
    a_rows, b_rows = rows_of(a_run / "test_predictions.csv"), rows_of(b_run / "test_predictions.csv")
    assert [r["image"] for r in a_rows] == [r["image"] for r in b_rows]
    a_right = np.array([r["true"] == r["predicted"] for r in a_rows])
    b_right = np.array([r["true"] == r["predicted"] for r in b_rows])
    only_a, only_b = int(np.sum(a_right & ~b_right)), int(np.sum(b_right & ~a_right))
    assert only_b > only_a  # training helped
    comparison = json.loads((b_run / "comparison.json").read_text())
    assert (comparison["only_a_correct"], comparison["only_b_correct"]) == (only_a, only_b)
    assert comparison["difference"]["estimate"] == pytest.approx((only_b - only_a) / len(a_rows))
    m = only_a + only_b
    exact = min(1.0, 2 * sum(math.comb(m, i) for i in range(min(only_a, only_b) + 1)) / 2**m)
    assert comparison["p_value"] == pytest.approx(exact, rel=1e-9)
    assert f"Against {a_run / 'test_predictions.csv'} on the same {len(a_rows)} images: accuracy +" in printed
    assert comparison["verdict"] in printed.replace("This model", "this model")
    assert comparison["verdict"].startswith("this model is better than the earlier model (McNemar p = ")
    assert comparison["difference"]["low"] > 0  # the interval leaves 0 out, as McNemar's test (p < 0.05) says

    # B on the first batch alone (16 of the 40 images), against A: compared on those, each named as in A's file
    printed = run_cli(
        [
            "test",
            *common,
            f"--ckpt_path={b_checkpoint}",
            f"--report.compare_with={a_run}",
            "--trainer.limit_test_batches=1",
        ],
        capsys,
    )
    assert f"Against {a_run / 'test_predictions.csv'} on 16 of the {len(a_rows)} images both tested" in printed
    limited = rows_of(runs / "version_4" / "test_predictions.csv")
    assert [r["image"] for r in limited] == [r["image"] for r in b_rows[:16]]
    assert json.loads((runs / "version_4" / "comparison.json").read_text())["images"] == 16

    # B against its own earlier test: nothing told apart
    run_cli(
        ["test", "--config", str(run["config"]), *FAST, f"--ckpt_path={run['best']}", f"--report.compare_with={tested}"]
    )
    itself = json.loads((newest_run(run["logs"]) / "comparison.json").read_text())
    assert (itself["difference"]["estimate"], itself["p_value"], itself["only_a_correct"]) == (0, 1, 0)
    # no image told apart: the difference is bounded by the exact 95% upper bound of 0 discordant of 40
    bound = 1 - 0.025 ** (1 / 40)
    assert (itself["difference"]["low"], itself["difference"]["high"]) == pytest.approx((-bound, bound))


@pytest.mark.slow  # two test runs: the full suite; the comparison's statistics stay quick
def test_a_comparison_with_another_test_set_is_refused_in_one_line(
    sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = EuroSATDataModule(root=sample_root, loader=LoaderOptions(num_workers=0))
    data.setup("test")
    root = sample_root / "EuroSAT_RGB"
    images = [Path(f).relative_to(root).as_posix() for f in data.test_dataset.files]
    true = [EUROSAT_CLASSES[label] for label in data.test_dataset.labels]
    earlier = tmp_path / "earlier.csv"
    args = ["test", *FAST, f"--data.root={sample_root}", "--model.network.pretrained=null"]
    args += [f"--model.network.architecture={json.dumps({'model_type': 'vit', **TINY_VIT})}"]
    args += [f"--trainer.default_root_dir={tmp_path / 'runs'}", f"--report.compare_with={earlier}"]

    def refused(images: list[str], true: list[str]) -> str:
        earlier.write_text(
            "image,true,predicted\n" + "".join(f"{i},{t},{t}\n" for i, t in zip(images, true, strict=True))
        )
        return cli_error(args, capsys)

    other = refused(["Forest/not_in_this_split.jpg", *images[1:]], true)
    assert other == (
        f"eurosat: error: --report.compare_with: {earlier} holds {len(images)} test images and this test "
        f"{len(images)}, and 2 are not in both (e.g. {min(images[0], 'Forest/not_in_this_split.jpg')}); compare two "
        "tests of the same "
        "split (data.split, the same data)\n"
    )
    relabelled = refused(images, ["River", *true[1:]] if true[0] != "River" else ["Forest", *true[1:]])
    assert relabelled.startswith(f"eurosat: error: --report.compare_with: {earlier}: 1 test image has another true")
    assert relabelled.count("\n") == 1
    earlier.write_text("path,class\nx.jpg,Forest\n")
    assert "is not a test's predictions (it needs the columns image, true, predicted" in cli_error(args, capsys)
    missing = tmp_path / "no-such-run"
    assert cli_error([*args, f"--report.compare_with={missing}"], capsys) == (
        f"eurosat: error: --report.compare_with: {missing} does not exist; give the run folder of an earlier "
        "`eurosat test` (it holds test_predictions.csv) or that file\n"
    )
    assert not list((tmp_path / "runs").rglob("version_*"))  # no test ran, and no run folder is left behind
