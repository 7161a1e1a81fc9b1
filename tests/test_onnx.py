"""The ONNX export: raw pixels in, probabilities out, checked with onnxruntime alone against `eurosat predict`."""

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from conftest import FAST, TINY_VIT, cli_error, run_cli
from PIL import Image
from test_backbones import save_tiny

from eurosat_finetune.data.patches.published import EUROSAT_CLASSES

TINY_MODEL = ["--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]
QUICK = [*FAST, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--export.onnx=true"]


def predict_and_run_onnx(run: Path, images: list[Path], tmp_path: Path) -> None:
    """`eurosat predict` on ``images``, then onnxruntime on their pixels in batches of 1, 7 and 25: the
    same top class and probabilities within 1e-4."""
    folder = tmp_path / "new"
    folder.mkdir()
    for image in images:
        (folder / image.name).write_bytes(image.read_bytes())
    output = tmp_path / "predictions.csv"
    best = run / "checkpoints" / "best.ckpt"
    run_cli(["predict", *FAST, f"--ckpt_path={best}", f"--data.predict_root={folder}", f"--predictions.output={output}",
             f"--trainer.default_root_dir={tmp_path / 'predict'}"])  # fmt: skip
    with open(output) as f:
        rows = {Path(row["path"]).name: row for row in csv.DictReader(f)}
    session = onnxruntime.InferenceSession(run / "huggingface" / "model.onnx")
    pixels = np.stack([np.asarray(Image.open(image).convert("RGB")).transpose(2, 0, 1) for image in images])
    start = 0
    for size in (1, 7, 25):
        probs = session.run(None, {"pixels": pixels[start : start + size]})[0]  # uint8, as stored
        assert probs.shape == (size, len(EUROSAT_CLASSES))
        for image, image_probs in zip(images[start : start + size], probs, strict=True):
            row = rows[image.name]
            assert EUROSAT_CLASSES[int(image_probs.argmax())] == row["predicted_class"]
            np.testing.assert_allclose(image_probs, [float(row[name]) for name in EUROSAT_CLASSES], atol=1e-4)
        start += size


@pytest.mark.slow  # an ONNX export takes seconds: the full suite
def test_a_vit_exports_raw_pixels_to_probabilities(sample_root: Path, tmp_path: Path) -> None:
    """A ViT's export end to end (the quick suite checks only the refusal without the ONNX extra); every
    family's is in test_backbones.py's test_family_fine_tunes_restores_offline_and_exports."""
    pretrained = save_tiny("vit", tmp_path / "pretrained")
    run_cli(["fit", *QUICK, f"--model.network.pretrained={pretrained}", f"--data.root={sample_root}",
             f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    run = tmp_path / "lightning_logs" / "version_0"
    images = sorted((sample_root / "EuroSAT_RGB").rglob("*.jpg"))[::6][:33]  # 1 + 7 + 25
    predict_and_run_onnx(run, images, tmp_path)
    exported = onnx.load(run / "huggingface" / "model.onnx")
    metadata = {prop.key: json.loads(prop.value) for prop in exported.metadata_props}
    assert metadata["class_names"] == list(EUROSAT_CLASSES)
    assert metadata["input"] == {"name": "pixels", "dtype": "uint8", "shape": ["N", 3, 32, 32]}
    assert (run / "huggingface" / "config.json").is_file()  # beside the Hugging Face export


@pytest.mark.slow
def test_a_model_trained_at_another_size_resizes_inside_the_graph(sample_root: Path, tmp_path: Path) -> None:
    """Trained on 32 px images at model.image_size 48: the graph takes the 32 px pixels and resizes them."""
    run_cli(["fit", *QUICK, *TINY_MODEL, "--model.input.size=48", f"--data.root={sample_root}",
             f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    run = tmp_path / "lightning_logs" / "version_0"
    exported = onnx.load(run / "huggingface" / "model.onnx")
    assert any(node.op_type == "Resize" for node in exported.graph.node)
    preprocessing = json.loads({p.key: p.value for p in exported.metadata_props}["preprocessing"])
    assert preprocessing["resize"] == [48, 48] and preprocessing["scale"] == pytest.approx(1 / 255)
    predict_and_run_onnx(run, sorted((sample_root / "EuroSAT_RGB").rglob("*.jpg"))[1::6][:33], tmp_path)


@pytest.mark.slow
def test_a_family_that_does_not_export_is_one_line_and_loses_nothing(
    sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever makes the exporter fail (here a graph it cannot hold: control flow that depends on the
    pixels' values), the fit's checkpoints and the Hugging Face export stay, and the command ends with
    one line naming the family and the reason."""
    from eurosat_finetune.outputs import onnx_export

    export_as_is = onnx_export.RawPixelsClassifier.forward

    def branching_on_values(self: onnx_export.RawPixelsClassifier, pixels: torch.Tensor) -> torch.Tensor:
        return export_as_is(self, pixels) if pixels.float().mean() > 100 else export_as_is(self, pixels).flip(-1)

    monkeypatch.setattr(onnx_export.RawPixelsClassifier, "forward", branching_on_values)
    args = ["fit", *QUICK, *TINY_MODEL, f"--data.root={sample_root}", f"--trainer.default_root_dir={tmp_path}"]
    message = cli_error(args, capsys).strip().splitlines()[-1]
    run = tmp_path / "lightning_logs" / "version_0"
    assert message.startswith("eurosat: error: ONNX export of the vit model failed (")
    assert message.endswith(f"the checkpoints and the Hugging Face export in {run / 'huggingface'} are kept")
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "huggingface" / "model.safetensors").is_file()
    assert not list((run / "huggingface").glob("*.onnx*"))


def test_without_the_onnx_extra_the_option_is_refused_before_training(
    sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as in an install without the [onnx] extra
    args = ["fit", *QUICK, *TINY_MODEL, f"--data.root={sample_root}", f"--trainer.default_root_dir={tmp_path}"]
    message = cli_error(args, capsys).strip().splitlines()[-1]
    assert message.startswith("eurosat: error: --export.onnx needs onnx and onnxscript (")
    assert message.endswith("`pip install 'eurosat-finetune[onnx]'`")
    assert not (tmp_path / "lightning_logs").exists()  # nothing started


@pytest.mark.slow
def test_a_multispectral_model_takes_its_bands_as_stored(ms_root: Path, tmp_path: Path) -> None:
    """uint16 (N, bands, H, W) in, with the bands named in the metadata; the same as `eurosat predict`."""
    import rasterio

    run_cli(["fit", *QUICK, *TINY_MODEL, f"--data.root={ms_root}", "--data.bands=[B08,B04]",
             f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    run = tmp_path / "lightning_logs" / "version_0"
    files = sorted((ms_root / "EuroSAT_MS").rglob("*.tif"))[::4][:8]
    patches = tmp_path / "patches"
    patches.mkdir()
    for file in files:
        (patches / file.name).write_bytes(file.read_bytes())
    output = tmp_path / "predictions.csv"
    args = [f"--data.predict_root={patches}", "--data.maps.scenes=none", f"--predictions.output={output}"]
    run_cli(
        [
            "predict",
            *FAST,
            f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
            *args,
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    with open(output) as f:
        rows = {Path(row["path"]).name: row for row in csv.DictReader(f)}
    session = onnxruntime.InferenceSession(run / "huggingface" / "model.onnx")
    metadata = {key: json.loads(value) for key, value in session.get_modelmeta().custom_metadata_map.items()}
    assert metadata["bands"] == ["B08", "B04"] and metadata["input"]["dtype"] == "uint16"
    with_bands = []
    for file in files:
        with rasterio.open(file) as source:
            with_bands.append(source.read([8, 4]))  # B08 and B04 of the 13 stored (B01 ... B12, B8A)
    probs = session.run(None, {"pixels": np.stack(with_bands)})[0]
    classes = metadata["class_names"]
    for file, file_probs in zip(files, probs, strict=True):
        row = rows[file.name]
        assert classes[int(file_probs.argmax())] == row["predicted_class"]
        np.testing.assert_allclose(file_probs, [float(row[name]) for name in classes], atol=1e-4)
