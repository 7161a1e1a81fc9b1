"""The LightningModule on a real tiny ViT: pretrained loading, the new head, preprocessing."""

from pathlib import Path

import pytest
import torch
from conftest import TINY_VIT
from PIL import Image
from torchvision.transforms import v2
from transformers import ViTForImageClassification

from eurosat_finetune.data.patches.published import EUROSAT_CLASSES
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.options import InputOptions, NetworkOptions

CLASSES = list(EUROSAT_CLASSES)


def test_pretrained_backbone_is_loaded_and_head_is_new(tiny_vit_dir: Path) -> None:
    saved = ViTForImageClassification.from_pretrained(tiny_vit_dir).state_dict()
    assert saved["classifier.weight"].shape == (1000, 32)
    model = ImageClassifier(CLASSES, NetworkOptions(pretrained=str(tiny_vit_dir)))
    loaded = model.net.state_dict()
    backbone = [k for k in saved if not k.startswith("classifier.")]
    assert len(backbone) > 20
    for key in backbone:
        torch.testing.assert_close(loaded[key], saved[key], rtol=0, atol=0, msg=key)
    assert model.net.training  # from_pretrained hands back eval mode; fine-tuning needs train mode
    assert model.net.classifier.out_features == 10
    assert model.net.config.id2label == dict(enumerate(CLASSES))
    assert model.net.config.label2id["Forest"] == 1
    # normalisation comes from the saved image processor, not from constants
    assert model.image_mean == [0.4, 0.5, 0.6] and model.image_std == [0.2, 0.25, 0.3]
    # the hyperparameters stay as given (hparams.yaml shows how the run started), while those a
    # checkpoint stores describe the network itself, so it rebuilds offline
    network = model.hparams.network
    assert network["pretrained"] == str(tiny_vit_dir) and network["architecture"] is None
    checkpoint = {"hyper_parameters": dict(model.hparams)}
    model.on_save_checkpoint(checkpoint)
    saved_hparams = checkpoint["hyper_parameters"]
    saved_network = saved_hparams["network"]
    assert saved_network["pretrained"] is None and saved_network["architecture"]["hidden_size"] == 32
    assert saved_network["architecture"]["model_type"] == "vit" and saved_network["config_overrides"] is None
    assert checkpoint["pretrained_from"] == str(tiny_vit_dir)
    rebuilt = ImageClassifier(**{k: v for k, v in saved_hparams.items() if k != "optimizer"})
    rebuilt.load_state_dict(model.state_dict())
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    model.eval(), rebuilt.eval()
    torch.testing.assert_close(rebuilt(images), model(images))


def test_random_init_from_an_architecture() -> None:
    model = ImageClassifier(["a", "b", "c"], NetworkOptions(pretrained=None, architecture=TINY_VIT))
    assert model.net.config.num_labels == 3 and model.net.config.id2label[2] == "c"
    assert model.image_size == 32
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["lr"] == 1e-4


@pytest.mark.parametrize("image_size", [32, 48, 64])
def test_preprocessing_matches_the_pil_pipeline(image_size: int) -> None:
    """Device-side resize + scale + normalise equals torchvision's PIL Resize + ToTensor + Normalize."""
    network = NetworkOptions(pretrained=None, architecture=TINY_VIT)
    model = ImageClassifier(["a", "b"], network, input=InputOptions(size=image_size))
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=generator)
    pil_transform = v2.Compose(
        [v2.Resize(image_size), v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)]
    )
    expected = torch.stack([pil_transform(Image.fromarray(img.permute(1, 2, 0).numpy())) for img in images])
    actual = model.preprocess(images)
    assert actual.shape == (3, 3, image_size, image_size)
    # PIL resizes in fixed point and rounds to uint8: at most one grey level apart (2/255 after
    # normalising with std 0.5), and rarely even that
    torch.testing.assert_close(actual, expected, rtol=0, atol=2.01 / 255)
    assert (actual - expected).abs().mean() < 1 / 255  # rounding noise, not a shift


def test_empty_class_names_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"model\.class_names"):
        ImageClassifier([], NetworkOptions(pretrained=None, architecture=TINY_VIT))


def test_one_predict_contract_for_images_and_scene_windows(sample_root: Path, tmp_path: Path) -> None:
    """Both kinds of predict batch are dicts; predict_step returns the probabilities of their images with
    the rest of the batch unchanged, so each writer finds the kind addressed to it and its metadata."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    from eurosat_finetune.data.predict_batches import IMAGES, SCENE_WINDOWS, collate_images
    from eurosat_finetune.data.prediction_images import PredictionImages
    from eurosat_finetune.data.scenes.catalog import SceneOptions, TrainedOn
    from eurosat_finetune.data.scenes.windows import SceneWindows

    model = ImageClassifier(CLASSES, NetworkOptions(pretrained=None, architecture={"model_type": "vit", **TINY_VIT}))
    model.eval()
    jpegs = sorted((sample_root / "EuroSAT_RGB" / "Forest").iterdir())[:2]
    (tmp_path / "broken.jpg").write_bytes(b"not a JPEG")
    images = PredictionImages([*jpegs, tmp_path / "broken.jpg"])
    batch = collate_images([images[i] for i in range(3)])
    with torch.no_grad():
        out = model.predict_step(batch, 0)
    assert out["kind"] == IMAGES and out["paths"] == [str(p) for p in jpegs]
    assert out["left_out"] == [(str(tmp_path / "broken.jpg"), "unreadable")] and "images" not in out
    # an image of another band count is a mismatch, told from its header (before Pillow's libtiff warns)
    stack = tmp_path / "ms.tif"
    with rasterio.open(stack, "w", driver="GTiff", height=8, width=8, count=13, dtype="uint16") as dst:
        dst.write(np.zeros((13, 8, 8), dtype=np.uint16))
    assert PredictionImages([stack])[0] == (None, str(stack), "13 bands; the model takes RGB images (3 bands)")
    reads = "13-band GeoTIFFs as EuroSAT MS stores them (it reads B04, B03, B02)"
    assert PredictionImages([jpegs[0]], bands=[3, 2, 1])[0] == (
        None,
        str(jpegs[0]),
        f"not a GeoTIFF; the model takes {reads}",
    )
    assert out["probs"].shape == (2, 10) and torch.allclose(out["probs"].sum(dim=-1), torch.ones(2))

    scene = tmp_path / "scene.tif"
    pixels = np.random.default_rng(0).integers(0, 255, (3, 64, 96), dtype=np.uint8)
    profile = {"driver": "GTiff", "height": 64, "width": 96, "count": 3, "dtype": "uint8"}
    with rasterio.open(scene, "w", crs="EPSG:32633", transform=from_origin(0, 0, 10, 10), **profile) as dst:
        dst.write(pixels)
    options = SceneOptions("auto", 32, None, None, 2750.0)
    scenes, whole = options.scenes_among(tmp_path, [], [scene], TrainedOn(32, None, 10.0))
    assert whole == [] and [(s.name, s.rows, s.cols) for s in scenes] == [("scene", 2, 3)]
    (batch,) = list(SceneWindows(scenes, batch_size=8))  # its 6 windows in one batch
    with torch.no_grad():
        out = model.predict_step(batch, 0)
    assert out["kind"] == SCENE_WINDOWS and "images" not in out and out["probs"].shape == (6, 10)
    assert out["row"].tolist() == [0, 0, 0, 1, 1, 1] and out["col"].tolist() == [0, 1, 2, 0, 1, 2]
    assert out["scene"].tolist() == [0] * 6 and out["valid"].all()
    with torch.no_grad():  # the window at row 1, col 2 is classified as the same pixels on their own
        alone = model(torch.from_numpy(pixels[:, 32:64, 64:96].copy())[None]).softmax(dim=-1)
    torch.testing.assert_close(out["probs"][5], alone[0])
