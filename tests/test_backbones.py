"""Every supported family of Hugging Face image classifier, fine-tuned, restored offline and exported.

Each family is a tiny randomly initialised model with a 1000-class head and its own kind of image
processor, saved with ``save_pretrained`` as a hub checkpoint would be.
"""

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from conftest import FAST, REPO, cli_error, run_cli, version_dir, write_config
from PIL import Image
from transformers import (
    AutoConfig,
    AutoModelForImageClassification,
    BeitImageProcessor,
    BitImageProcessor,
    ConvNextImageProcessor,
    DeiTImageProcessor,
    ViTImageProcessor,
    pipeline,
)

from eurosat_finetune.data.patches.published import EUROSAT_CLASSES
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.backbones import backbone_of
from eurosat_finetune.model.options import InputOptions, NetworkOptions
from eurosat_finetune.outputs.huggingface_export import at_input_size

MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
TRANSFORMER = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
CROP = {"size": {"shortest_edge": 36}, "crop_size": {"height": 32, "width": 32}, "do_center_crop": True}
FAMILIES: dict[str, tuple[dict[str, Any], Any]] = {
    "vit": ({**TRANSFORMER, "intermediate_size": 64}, ViTImageProcessor(size={"height": 32, "width": 32})),
    "deit": (
        {**TRANSFORMER, "intermediate_size": 64, "architectures": ["DeiTForImageClassification"]},
        DeiTImageProcessor(**CROP),
    ),
    "beit": (
        {**TRANSFORMER, "intermediate_size": 64, "use_relative_position_bias": True},
        BeitImageProcessor(size={"height": 32, "width": 32}),
    ),
    "swin": (
        # two blocks a stage, so the second attends in shifted windows
        {"image_size": 32, "patch_size": 2, "embed_dim": 16, "depths": [2, 2], "num_heads": [1, 2], "window_size": 4},
        ViTImageProcessor(size={"height": 32, "width": 32}),
    ),
    "convnext": (
        {"hidden_sizes": [16, 32], "depths": [1, 1], "num_stages": 2},
        ConvNextImageProcessor(size={"shortest_edge": 32}),
    ),
    "dinov2": ({**TRANSFORMER, "mlp_ratio": 2}, BitImageProcessor(**CROP)),
    "timm_wrapper": (
        {
            "architecture": "test_vit",
            "pretrained_cfg": {"input_size": [3, 32, 32], "mean": MEAN, "std": STD, "crop_pct": 1.0},
        },
        None,  # a timm model keeps its preprocessing in its config
    ),
}


# Every family is rebuilt from its checkpoint by one code path (`build_from_config`: AutoConfig, then
# from_config), which for timm's wrapper goes on through timm's own model factory. A fresh offline process
# costs 10 s of imports: timm's wrapper runs in one here, a ViT in test_cli's
# test_fine_tune_from_a_deleted_directory_restores_offline; the other families run in-process.
FRESH_PROCESS_FAMILIES = {"timm_wrapper"}


def refuse_connections(*args: object) -> None:
    raise OSError("this test runs offline: no connections")


def save_tiny(family: str, directory: Path) -> Path:
    fields, processor = FAMILIES[family]
    model = AutoModelForImageClassification.from_config(AutoConfig.for_model(family, num_labels=1000, **fields))
    model.save_pretrained(directory)
    if processor is not None:
        processor.image_mean, processor.image_std = MEAN, STD
        processor.save_pretrained(directory)
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_family_fine_tunes_restores_offline_and_exports(family: str, sample_root: Path, tmp_path: Path) -> None:
    pretrained = save_tiny(family, tmp_path / "pretrained")
    classes = sorted(p.name for p in (sample_root / "EuroSAT_RGB").iterdir() if p.is_dir())

    # the backbone as saved, a new 10-class head, the input size and normalisation of its processor
    model = ImageClassifier(classes, NetworkOptions(pretrained=str(pretrained)))
    saved = backbone_of(AutoModelForImageClassification.from_pretrained(pretrained))
    timm_head = {id(p) for p in saved.get_classifier().parameters()} if hasattr(saved, "get_classifier") else set()
    loaded = dict(backbone_of(model.net).named_parameters())
    for key, value in saved.named_parameters():
        if id(value) not in timm_head:  # (a timm model's head sits inside its backbone)
            torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)
    assert model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape == (2, 10)
    assert model.net.config.id2label == dict(enumerate(classes))
    assert (model.image_size, model.image_mean, model.image_std) == (32, MEAN, STD)

    logs = tmp_path / "logs"
    config = write_config(tmp_path / "run.yaml", sample_root, logs, max_epochs=1, limit_train_batches=3)
    run_cli(["fit", "--config", str(config), *FAST, f"--model.network.pretrained={pretrained}", "--export.onnx=true"])
    run = version_dir(logs, 0)
    best = run / "checkpoints" / "best.ckpt"
    shutil.rmtree(pretrained)

    # the checkpoint alone, the pretrained directory gone (in a fresh process, no hub and an empty
    # Hugging Face cache too: huggingface_hub reads them when it is imported)
    test = ["test", "--config", str(config), *FAST, "--ckpt_path", str(best)]
    if family in FRESH_PROCESS_FAMILIES:
        offline = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-hf-home")}
        command = [sys.executable, "-m", "eurosat_finetune", *test]
        result = subprocess.run(command, env=offline, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    else:
        with pytest.MonkeyPatch.context() as no_network:
            no_network.setattr(socket.socket, "connect", refuse_connections)
            run_cli(test)
    assert (version_dir(logs, 1) / "classification_report.json").is_file()

    predictions = tmp_path / "predictions.csv"
    predict = [
        "predict",
        "--config",
        str(config),
        *FAST,
        "--ckpt_path",
        str(best),
        f"--predictions.output={predictions}",
    ]
    run_cli(predict)
    with open(predictions, newline="") as f:
        rows = list(csv.DictReader(f))
    classify = pipeline("image-classification", model=str(run / "huggingface"), device="cpu")
    for row in rows[:8]:
        top = classify(Image.open(row["path"]), top_k=1)[0]
        assert top["label"] == row["predicted_class"], (row["path"], top, row)
        assert top["score"] == pytest.approx(float(row["probability"]), abs=1e-4)
    exports_raw_pixels_to_what_predict_gave(run / "huggingface" / "model.onnx", rows[:33])


def exports_raw_pixels_to_what_predict_gave(path: Path, rows: list[dict[str, str]]) -> None:
    """The ONNX export takes uint8 pixels as stored, in batches of 1, 7 and 25 (33 rows), and gives the
    probabilities `eurosat predict` wrote for them (within 1e-4); its metadata names the classes and input.
    (test_onnx.py checks the ViT's in the quick suite, and what else the export does.)"""
    exported = onnx.load(path)
    metadata = {prop.key: json.loads(prop.value) for prop in exported.metadata_props}
    assert metadata["class_names"] == list(EUROSAT_CLASSES)
    assert metadata["input"] == {"name": "pixels", "dtype": "uint8", "shape": ["N", 3, 32, 32]}
    session = onnxruntime.InferenceSession(path)
    pixels = np.stack([np.asarray(Image.open(row["path"]).convert("RGB")).transpose(2, 0, 1) for row in rows])
    start = 0
    for size in (1, 7, 25):
        probs = session.run(None, {"pixels": pixels[start : start + size]})[0]
        for row, image_probs in zip(rows[start : start + size], probs, strict=True):
            assert EUROSAT_CLASSES[int(image_probs.argmax())] == row["predicted_class"], row["path"]
            np.testing.assert_allclose(image_probs, [float(row[name]) for name in EUROSAT_CLASSES], atol=1e-4)
        start += size


def test_a_size_the_model_cannot_take_is_one_line(
    sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Swin attends in windows: every stage must be at least one window wide (here 4 tokens of 2 px,
    halved once: 13 px and up). The size is tried on a blank image when the model is built."""
    pretrained = save_tiny("swin", tmp_path / "swin")
    model = [f"--model.network.pretrained={pretrained}", "--model.input.size=12"]
    message = cli_error(["fit", *FAST, *model, f"--data.root={sample_root}"], capsys).splitlines()[-1]
    assert message.startswith("eurosat: error: model.input.size=12 does not work with this swin model (")
    assert message.endswith("); sizes from 13 up work, 32 is native (size: null uses the native size)")
    ImageClassifier(["a", "b"], NetworkOptions(pretrained=str(pretrained)), input=InputOptions(size=13))  # the smallest


@pytest.mark.slow  # an end-to-end run: the full suite
def test_a_checkpoint_of_version_0_1_0_restores(sample_root: Path, tmp_path: Path) -> None:
    """Before commit d5a0566 the module was ViTClassifier, kept the network in ``self.vit`` and its architecture in
    ``vit_config``; its checkpoints evaluate, predict and export as before."""
    saved = REPO / "tests" / "data" / "vit-classifier-0.1.0.ckpt"
    stored = torch.load(saved, weights_only=True)["state_dict"]
    model = ImageClassifier.load_from_checkpoint(saved)
    for key, value in model.net.state_dict().items():
        torch.testing.assert_close(value, stored[f"vit.{key}"], rtol=0, atol=0, msg=key)

    config = write_config(tmp_path / "run.yaml", sample_root, tmp_path / "logs")
    run_cli(["test", "--config", str(config), *FAST, "--ckpt_path", str(saved), "--export.after_test=true"])
    run = version_dir(tmp_path / "logs", 0)
    assert (run / "classification_report.json").is_file()
    image = next((sample_root / "EuroSAT_RGB" / "Forest").iterdir())
    label = pipeline("image-classification", model=str(run / "huggingface"), device="cpu")(Image.open(image))[0][
        "label"
    ]
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(np.asarray(Image.open(image))).permute(2, 0, 1)[None])
    assert label == model.class_names[int(logits.argmax())]


@pytest.mark.slow  # an end-to-end run: the full suite
def test_a_config_yaml_written_before_the_layers_tests_and_predicts(sample_root: Path, tmp_path: Path) -> None:
    """``tests/data/config-0.1.0.yaml`` is the config.yaml a fit wrote at commit e39444a, when every module
    sat flat in the package; with it, the 0.1.0 checkpoint tests and predicts as a user would run them."""
    config = REPO / "tests" / "data" / "config-0.1.0.yaml"
    saved = REPO / "tests" / "data" / "vit-classifier-0.1.0.ckpt"
    common = ["--config", str(config), "--ckpt_path", str(saved), f"--trainer.default_root_dir={tmp_path}", *FAST[2:]]
    run_cli(["test", *common, f"--data.root={sample_root}"])
    with open(tmp_path / "lightning_logs" / "version_0" / "classification_report.csv") as f:
        report = {row["class"]: row for row in csv.DictReader(f)}
    assert set(EUROSAT_CLASSES) < set(report) and float(report["macro avg"]["support"]) == 40  # the test split
    forest = sample_root / "EuroSAT_RGB" / "Forest"
    run_cli(["predict", *common, f"--data.root={sample_root}", f"--data.predict_root={forest}"])
    with open(tmp_path / "lightning_logs" / "version_1" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["path"] for row in rows] == sorted(str(p) for p in forest.iterdir() if p.suffix == ".jpg")
    assert all(row["predicted_class"] in EUROSAT_CLASSES for row in rows)


@pytest.mark.parametrize("family", ["vit", "deit", "dinov2", "beit", "swin", "convnext"])
def test_export_at_another_size_needs_no_interpolation_flag(family: str) -> None:
    """Trained at 48 px from a 32 px model: the exported network, run as pipeline runs it (no
    ``interpolate_pos_encoding``), gives the fine-tuned model's outputs."""
    fields = {k: v for k, v in FAMILIES[family][0].items() if k != "architectures"}
    architecture = {"model_type": family, **fields}
    model = ImageClassifier(
        list("abc"), NetworkOptions(pretrained=None, architecture=architecture), input=InputOptions(size=48)
    )
    model.eval()
    pixels = torch.randn(2, 3, 48, 48)
    exported = at_input_size(model.net, 48).eval()
    kwargs = {"interpolate_pos_encoding": True} if model.interpolates else {}
    with torch.no_grad():
        expected = model.net(pixel_values=pixels, **kwargs).logits
        torch.testing.assert_close(exported(pixel_values=pixels).logits, expected)


@pytest.mark.parametrize("family", FAMILIES)
def test_freeze_backbone_leaves_only_the_head_trainable(family: str, tmp_path: Path) -> None:
    pretrained = save_tiny(family, tmp_path / "pretrained")
    model = ImageClassifier(list("abc"), NetworkOptions(pretrained=str(pretrained), freeze_backbone=True))
    trainable = {name for name, p in model.net.named_parameters() if p.requires_grad}
    head = "timm_model.head" if family == "timm_wrapper" else "classifier"
    assert trainable == {f"{head}.weight", f"{head}.bias"}
    model.train()(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).sum().backward()
    with_grad = {name for name, p in model.net.named_parameters() if p.grad is not None}
    assert with_grad == trainable  # the backbone gets no gradients at all


@pytest.mark.slow
def test_a_timm_model_without_timm_says_what_to_install(sample_root: Path, tmp_path: Path) -> None:
    """In a Python where timm cannot be imported (hidden here, as it is absent without the extra)."""
    pretrained = save_tiny("timm_wrapper", tmp_path / "timm")
    hide_timm = (
        "import importlib.util, sys; sys.modules['timm'] = None; find = importlib.util.find_spec; "
        "importlib.util.find_spec = lambda name, *a, **k: None if name == 'timm' else find(name, *a, **k); "
        "from eurosat_finetune.cli import main; main(sys.argv[1:])"
    )
    command = [sys.executable, "-c", hide_timm, "fit", f"--model.network.pretrained={pretrained}"]
    command += [f"--data.root={sample_root}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"eurosat: error: cannot load model.network.pretrained='{pretrained}' (")
    assert last.endswith("timm models need `pip install 'eurosat-finetune[timm]'`")
