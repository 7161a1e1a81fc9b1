"""What an export holds: the chosen checkpoint's weights, on the CPU, in float32, whatever device,
precision or compilation the model was left in; predictions in float32 under any autocast; and a
multispectral model's card, whose code runs on a 13-band patch."""

import json
import re
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import rasterio
import torch
import yaml
from conftest import FAST, TINY_VIT, run_cli
from fakes.multispectral import link_published_layout
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification

from eurosat_finetune.data.patches.description import DatasetDescription
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.options import NetworkOptions
from eurosat_finetune.outputs.huggingface_export import export_huggingface
from eurosat_finetune.outputs.model_card import data_section, usage
from eurosat_finetune.outputs.onnx_export import ONNX_NAME, export_onnx
from eurosat_finetune.pixels import to_model_input

CLASSES = ["Forest", "River", "SeaLake"]
PIXELS = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def tiny_classifier(**options: object) -> ImageClassifier:
    torch.manual_seed(0)
    return ImageClassifier(
        CLASSES, network=NetworkOptions(pretrained=None, architecture={"model_type": "vit", **TINY_VIT}), **options
    ).eval()


def float32_probabilities(state_dict: dict[str, torch.Tensor]) -> np.ndarray:
    """What a float32 CPU classifier holding ``state_dict``'s weights gives for PIXELS."""
    model = tiny_classifier()
    model.load_state_dict({key: value.cpu().float() for key, value in state_dict.items()})
    with torch.no_grad():
        return model(PIXELS).softmax(dim=-1).numpy()


def checkpoint_then_other_weights(model: ImageClassifier) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s weights (the "best checkpoint"); the model then moves on to other weights."""
    checkpoint = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    with torch.no_grad():
        for parameter in model.net.parameters():
            parameter.add_(0.5)
    return checkpoint


def exports_of(model: ImageClassifier, folder: Path, state_dict: dict | None) -> dict[str, np.ndarray]:
    """Export ``model`` as `--export.onnx true` does; the probabilities each export gives for PIXELS,
    run on the CPU by onnxruntime and by transformers, after checking they hold float32 weights."""
    export_huggingface(model, folder, state_dict)
    export_onnx(model, folder / ONNX_NAME, (32, 32), state_dict)
    assert {tensor.dtype for tensor in load_file(folder / "model.safetensors").values()} == {torch.float32}
    assert json.loads((folder / "config.json").read_text())["dtype"] == "float32"
    onnx_probs = onnxruntime.InferenceSession(folder / ONNX_NAME).run(None, {"pixels": PIXELS.numpy()})[0]
    net = AutoModelForImageClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = net(pixel_values=to_model_input(PIXELS, 32, model.image_mean, model.image_std)).logits
    return {"onnx": onnx_probs, "huggingface": logits.softmax(dim=-1).numpy()}


@pytest.mark.slow  # an end-to-end run: the full suite
@pytest.mark.parametrize("weights", ["checkpoint", "current"])
def test_exports_of_a_bf16_network_are_float32(weights: str, tmp_path: Path) -> None:
    """Under `--trainer.precision bf16-true` the network and its checkpoints are bf16: the exports are
    float32 (onnxruntime on a CPU runs no bf16 convolution), with the checkpoint's weights after fit and
    the tested ones after test."""
    model = tiny_classifier().to(torch.bfloat16)
    checkpoint = checkpoint_then_other_weights(model) if weights == "checkpoint" else model.state_dict()
    expected = float32_probabilities(checkpoint)
    exported = exports_of(model, tmp_path / "export", checkpoint if weights == "checkpoint" else None)
    for probs in exported.values():
        np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert next(model.net.parameters()).dtype == torch.bfloat16  # the run's own model is left as it was


@pytest.mark.slow
def test_exports_of_a_compiled_network_carry_the_checkpoint_s_weights(tmp_path: Path) -> None:
    """With `--model.network.torch_compile true` the network is compiled in place; the export must not call the
    compiled original (which holds the last weights) but the checkpoint's weights."""
    model = tiny_classifier()
    checkpoint = checkpoint_then_other_weights(model)
    model.net.compile(backend="eager")  # the code path of torch.compile, without inductor's build
    with torch.no_grad():
        last = model(PIXELS).softmax(dim=-1).numpy()
    expected = float32_probabilities(checkpoint)
    assert np.abs(last - expected).max() > 1e-3  # the two weights tell apart
    for probs in exports_of(model, tmp_path / "export", checkpoint).values():
        np.testing.assert_allclose(probs, expected, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("weights", ["checkpoint", "current"])
def test_exports_of_a_network_on_the_gpu_are_on_the_cpu(weights: str, tmp_path: Path) -> None:
    """After `eurosat test` on a GPU the network is still there: the exports run on the CPU all the same."""
    model = tiny_classifier().cuda()
    checkpoint = checkpoint_then_other_weights(model) if weights == "checkpoint" else model.state_dict()
    expected = float32_probabilities(checkpoint)
    for probs in exports_of(model, tmp_path / "export", checkpoint if weights == "checkpoint" else None).values():
        np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert next(model.net.parameters()).is_cuda


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("tta", [False, True])
def test_predicted_probabilities_are_float32_under_autocast(dtype: torch.dtype, tta: bool) -> None:
    """`eurosat predict` in bf16-mixed or 16-mixed: the softmax is taken in float32, of the logits the
    autocast network gave (the ONNX graph is float32 throughout)."""
    model = tiny_classifier(tta=tta)
    batch = {"images": PIXELS, "paths": [f"{n}.jpg" for n in range(len(PIXELS))]}
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
        predicted = model.predict_step(batch, 0)
        logits = model.evaluation_logits(PIXELS)
    assert predicted["probs"].dtype == torch.float32 and predicted["paths"] == batch["paths"]
    torch.testing.assert_close(predicted["probs"], logits.float().softmax(dim=-1), rtol=0, atol=0)


def python_block(card: str) -> str:
    return re.search(r"```python\n(.*?)```", card, re.DOTALL).group(1)


@pytest.mark.slow
def test_a_eurosat_ms_model_s_card_names_its_bands_and_its_code_runs_on_13_bands(
    ms_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trained on B08, B04 and B03 of EuroSAT MS: the card says so, with the units and normalisation of
    the bands, and the code it shows classifies a 13-band GeoTIFF as stored, as the checkpoint does."""
    # the data layer names EuroSAT MS only its 27,000 published files: here as many links to one 64 px patch
    # (a synthetic one enlarged), read as they are needed (no decode cache), for two steps and two validation
    # batches (2, not 1: where scikit-learn was imported before Lightning, Trainer's int | float options parse
    # "1" as 1.0, all of them)
    sample = sorted((ms_root / "EuroSAT_MS" / "River").glob("*.tif"))[0]
    with rasterio.open(sample) as source:
        profile, pixels = source.profile, source.read().repeat(4, axis=1).repeat(4, axis=2)
    one = tmp_path / "one.tif"
    with rasterio.open(one, "w", **{**profile, "width": 64, "height": 64}) as dst:
        dst.write(pixels)
    link_published_layout(tmp_path / "data" / "EuroSAT_MS", one)
    model = ["--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]
    data = [f"--data.root={tmp_path / 'data'}", "--data.bands=[B08,B04,B03]", "--data.cache.enabled=false"]
    run_cli(["fit", *FAST, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2",
             *model, *data, f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    run = tmp_path / "lightning_logs" / "version_0"
    export = run / "huggingface"
    card = (export / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["datasets"] == ["EuroSAT MS"] and "sentinel-2" in metadata["tags"]
    assert "land-cover classifier for EuroSAT MS" in card and "13-band Sentinel-2 Level-1C patches" in card
    assert "EuroSAT RGB" not in card and "8-bit" not in card and "true colour" not in card
    assert "Trained on bands B08, B04, B03, in that order" in card
    assert "top-of-atmosphere reflectance x 10,000" in card
    processor = json.loads((export / "preprocessor_config.json").read_text())  # what the network is fed with
    stats = zip(("B08", "B04", "B03"), processor["image_mean"], processor["image_std"], strict=True)
    assert ", ".join(f"{band} {mean:g} ± {std:g}" for band, mean, std in stats) in card
    assert "pipeline(" not in card and "image.jpg" not in card

    patch_file = sorted((ms_root / "EuroSAT_MS" / "River").glob("*.tif"))[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "patch.tif").write_bytes(patch_file.read_bytes())  # the file the card's code reads
    shown = python_block(card)
    assert "path/to/this/folder" in shown
    namespace: dict = {}
    exec(shown.replace("path/to/this/folder", str(export)), namespace)
    assert namespace["patch"].shape[0] == 13  # every band of the file, as stored
    trained = [7, 3, 2]  # B08, B04 and B03 of the 13 stored in EuroSAT MS's order (B01 ... B12, B8A), from 0
    best = ImageClassifier.load_from_checkpoint(run / "checkpoints" / "best.ckpt", map_location="cpu").eval()
    pixels = torch.from_numpy(namespace["patch"][trained].astype(np.int32))[None]  # as training reads them
    with torch.no_grad():
        expected = best(pixels).softmax(dim=-1)[0]
    np.testing.assert_allclose(namespace["probabilities"].numpy(), expected.numpy(), atol=1e-5)


def test_a_card_of_other_multispectral_data_names_its_bands_without_claiming_eurosat(tmp_path: Path) -> None:
    """13-band GeoTIFFs that are not the published EuroSAT MS: bands and normalisation, no units assumed."""
    bands = {"names": ["B02", "B8A"], "mean": [1100.5, 2500.0], "std": [300.25, 1200.0]}
    model = tiny_classifier(input_bands=bands)
    data = DatasetDescription(
        name=f"the images in {tmp_path}", is_eurosat=False, folder=tmp_path, image_size=(20, 20),
        split_sizes={"train": 8, "val": 2, "test": 2}, split_recipe="a stratified split", split_fingerprint="0",
        batch_size=4, augment=False, bands=["B02", "B8A"],
    )  # fmt: skip
    section = " ".join(data_section(data, model))
    assert "Trained on bands B02, B8A, in that order (uint16, in the units the GeoTIFFs store)" in section
    assert "B02 1100.5 ± 300.25, B8A 2500 ± 1200" in section
    assert "Helber" not in section and "reflectance" not in section and "EuroSAT" not in section
    shown = "\n".join(usage(model, data))
    assert "bands = [1, 12]  # B02, B8A" in shown and "patch = source.read()  # (13, 20, 20)" in shown


def test_an_export_draws_no_progress_bar_and_leaves_transformers_bars_as_they_were(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    export_huggingface(tiny_classifier(), tmp_path / "export")
    assert "Writing model shards" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # a user's own loading shows its bars again
