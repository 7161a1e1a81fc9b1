"""Sentinel-2 pretrained weights known by name: SSL4EO-S12's 13-band networks, as TorchGeo defines them.

Each entry is copied from TorchGeo (github.com/microsoft/torchgeo, commit 7ea0616, 2025-08-14):
``torchgeo/models/resnet.py`` (``ResNet18_Weights``, ``ResNet50_Weights``) and ``torchgeo/models/vit.py``
(``ViTSmall16_Weights``): the timm model name (``meta['model']``), the file's URL (whose name ends in
the first 8 hex digits of its SHA-256, which torch.hub checks), the bands in input order
(``_sentinel2_toa_bands``: ESA order, B8A ninth, with B10) and the normalisation (``Normalize(mean=0,
std=10000)``: reflectance, from values stored as reflectance x 10,000). The names are TorchGeo's enum
members, so ``ResNet50_Weights.SENTINEL2_ALL_MOCO`` means here what it means there.

A table rather than TorchGeo itself: TorchGeo would bring about twenty dependencies (kornia, GDAL's
stack, segmentation-models-pytorch ...) for six rows, and its transforms are kornia pipelines that
would have to be translated into this package's normalisation anyway.
"""

from dataclasses import dataclass

from eurosat_finetune.data.bands import ESA_BANDS

TORCHGEO = "github.com/microsoft/torchgeo/blob/7ea0616ded0cc27a8feb8b2aafefd7c14155f6fb/torchgeo/models"
SSL4EO_S12 = "SSL4EO-S12 (Wang et al., arXiv 2211.07044; github.com/zhu-xlab/SSL4EO-S12)"


@dataclass(frozen=True)
class KnownWeights:
    """A pretrained network's file and what it expects: its timm model, input bands in order, the
    normalisation of each band in stored units (reflectance x 10,000), and input size."""

    timm_model: str
    url: str
    source: str
    bands: tuple[str, ...] = ESA_BANDS
    mean: tuple[float, ...] = (0.0,) * len(ESA_BANDS)  # reflectance = stored / 10,000, no centring
    std: tuple[float, ...] = (10_000.0,) * len(ESA_BANDS)
    input_size: int = 224  # the pretraining crop (TorchGeo: Resize 256, CenterCrop 224)


HF = "https://hf.co/torchgeo"
KNOWN_WEIGHTS: dict[str, KnownWeights] = {
    "ResNet18_Weights.SENTINEL2_ALL_MOCO": KnownWeights(
        "resnet18",
        f"{HF}/resnet18_sentinel2_all_moco/resolve/5b8cddc9a14f3844350b7f40b85bcd32aed75918/"
        "resnet18_sentinel2_all_moco-59bfdff9.pth",
        f"{SSL4EO_S12}, MoCo; {TORCHGEO}/resnet.py ResNet18_Weights.SENTINEL2_ALL_MOCO",
    ),
    "ResNet50_Weights.SENTINEL2_ALL_MOCO": KnownWeights(
        "resnet50",
        f"{HF}/resnet50_sentinel2_all_moco/resolve/da4f3c9dbe09272eb902f3b37f46635fa4726879/"
        "resnet50_sentinel2_all_moco-df8b932e.pth",
        f"{SSL4EO_S12}, MoCo; {TORCHGEO}/resnet.py ResNet50_Weights.SENTINEL2_ALL_MOCO",
    ),
    "ResNet50_Weights.SENTINEL2_ALL_DINO": KnownWeights(
        "resnet50",
        f"{HF}/resnet50_sentinel2_all_dino/resolve/d7f14bf5530d70ac69d763e58e77e44dbecfec7c/"
        "resnet50_sentinel2_all_dino-d6c330e9.pth",
        f"{SSL4EO_S12}, DINO; {TORCHGEO}/resnet.py ResNet50_Weights.SENTINEL2_ALL_DINO",
    ),
    "ViTSmall16_Weights.SENTINEL2_ALL_DINO": KnownWeights(
        "vit_small_patch16_224",
        f"{HF}/vit_small_patch16_224_sentinel2_all_dino/resolve/5b41dd418a79de47ac9f5be3e035405a83818a62/"
        "vit_small_patch16_224_sentinel2_all_dino-36bcc127.pth",
        f"{SSL4EO_S12}, DINO; {TORCHGEO}/vit.py ViTSmall16_Weights.SENTINEL2_ALL_DINO",
    ),
    "ViTSmall16_Weights.SENTINEL2_ALL_MOCO": KnownWeights(
        "vit_small_patch16_224",
        f"{HF}/vit_small_patch16_224_sentinel2_all_moco/resolve/1cb683f6c14739634cdfaaceb076529adf898c74/"
        "vit_small_patch16_224_sentinel2_all_moco-67c9032d.pth",
        f"{SSL4EO_S12}, MoCo; {TORCHGEO}/vit.py ViTSmall16_Weights.SENTINEL2_ALL_MOCO",
    ),
    # the one file without a hash in its name (hosted by the paper's author): torch.hub cannot check it
    "ViTSmall16_Weights.SENTINEL2_ALL_MAE": KnownWeights(
        "vit_small_patch16_224",
        "https://huggingface.co/wangyi111/SSL4EO-S12/resolve/75c72195d35201dc1fb210818993518c25da566b/"
        "B13_vits16_mae_ep99_enc.pth",
        f"{SSL4EO_S12}, MAE; {TORCHGEO}/vit.py ViTSmall16_Weights.SENTINEL2_ALL_MAE",
    ),
}

KNOWN_FILES = {entry.url.rsplit("/", 1)[-1]: entry for entry in KNOWN_WEIGHTS.values()}
"""The known weights by their file's name: a copy given by path is recognised (and checked) by it."""
