"""Any Hugging Face image classifier as the network: loaded, described and frozen without naming its family.

Everything goes through transformers' Auto classes, so ViT, DeiT, BEiT, Swin, ConvNeXt, DINOv2 and
timm models (``timm/<name>`` through transformers' timm wrapper) take the same path. What differs
between families is asked of the model itself: its ``base_model_prefix`` (the backbone), whether its
``forward`` takes ``interpolate_pos_encoding``, and its image processor (input size, mean, std).
"""

import inspect
import logging
import math
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

from eurosat_finetune.errors import ConfigError, ModelLoadError, first_line

log = logging.getLogger(__name__)

# Keys of a config's to_diff_dict() that describe files or labels rather than the network.
NON_ARCHITECTURE_KEYS = ("label2id", "id2label", "label_names", "num_classes", "transformers_version", "dtype")


def labels_of(class_names: list[str]) -> dict[str, Any]:
    """``id2label``/``label2id`` for a new head with one output per class (timm's wrapper reads ``num_labels``)."""
    return {
        "id2label": dict(enumerate(class_names)),
        "label2id": {name: i for i, name in enumerate(class_names)},
        "num_labels": len(class_names),  # after id2label, which it must agree with
    }


def load_pretrained(model_name_or_path: str, overrides: dict[str, Any], class_names: list[str]) -> PreTrainedModel:
    """A pretrained image classifier with a new head for ``class_names``, in train mode, or a one-line
    error that says how to make it loadable."""
    try:
        model = AutoModelForImageClassification.from_pretrained(
            model_name_or_path, **overrides, **labels_of(class_names), ignore_mismatched_sizes=True
        )
    except ImportError as err:  # e.g. a timm model without timm installed
        raise ModelLoadError(
            f"cannot load model.network.pretrained={model_name_or_path!r} ({first_line(err)}); timm models need "
            "`pip install 'eurosat-finetune[timm]'`"
        ) from err
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"cannot load model.network.pretrained={model_name_or_path!r} as an image classifier "
            f"({first_line(err)}). "
            "Without network access, point model.network.pretrained at a local directory written by "
            "save_pretrained (or at a model already in the Hugging Face cache)"
        ) from err
    if getattr(model.config, "label_names", None) is not None:  # timm's wrapper saves these, not id2label
        model.config.label_names = list(class_names)
    return model.train()  # from_pretrained returns eval mode; Lightning keeps whatever mode it finds


def build_from_config(model_config: dict[str, Any], class_names: list[str]) -> PreTrainedModel:
    """A randomly initialised image classifier from a config dict with a ``model_type`` (ViT if none)."""
    fields = {k: v for k, v in model_config.items() if k not in NON_ARCHITECTURE_KEYS}
    model_type = fields.pop("model_type", "vit")
    if model_type not in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES:
        raise ConfigError(
            f"model.network.architecture has model_type={model_type!r}, which transformers has no image classifier "
            f"for; use one of {', '.join(sorted(MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES))}"
        )
    config = AutoConfig.for_model(model_type, **fields, **labels_of(class_names))
    if not config.architectures:  # DeiT has two classifier classes; take the plain one
        names = MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES[model_type]
        config.architectures = [names[0] if isinstance(names, tuple) else names]
    return AutoModelForImageClassification.from_config(config)


def architecture_of(model: PreTrainedModel) -> dict[str, Any]:
    """The model's config as a ``model.network.architecture`` dict that rebuilds it offline (labels are set apart)."""
    architecture = model.config.to_diff_dict()
    for key in NON_ARCHITECTURE_KEYS:
        architecture.pop(key, None)
    architecture["model_type"] = model.config.model_type
    return architecture


def load_image_processor(model_name_or_path: str) -> Any | None:
    """The pretrained model's image processor, or None if it ships none."""
    try:
        return AutoImageProcessor.from_pretrained(model_name_or_path)
    except (OSError, ValueError):
        log.warning("%s has no image processor config; using ImageNet-style defaults", model_name_or_path)
        return None


def native_input(processor: Any | None, config: PretrainedConfig) -> tuple[int, list[float], list[float]]:
    """Input side length, mean and std the model was pretrained with, as its image processor says
    (the crop size when it crops), else its config's ``image_size`` and ImageNet's 0.5/0.5."""
    data_config = getattr(processor, "data_config", None)  # timm models keep theirs in timm's format
    if data_config is not None:
        return int(data_config["input_size"][-1]), list(data_config["mean"]), list(data_config["std"])
    size = getattr(config, "image_size", None) or 224
    if processor is None:
        return size, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    sizes = [getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None]
    sizes.append(getattr(processor, "size", None))
    for entry in sizes:
        side = entry and (entry.get("height") or entry.get("shortest_edge"))
        if side:
            size = int(side)
            break
    return size, list(processor.image_mean), list(processor.image_std)


def backbone_of(model: PreTrainedModel) -> nn.Module:
    """The pretrained body, found through ``base_model_prefix`` (``vit``, ``swin``, ``timm_model`` ...)."""
    return getattr(model, model.base_model_prefix)


def freeze_backbone(model: PreTrainedModel) -> None:
    """Train only the head: timm models keep theirs inside the backbone (``get_classifier``)."""
    backbone = backbone_of(model)
    backbone.requires_grad_(False)
    if hasattr(backbone, "get_classifier"):
        backbone.get_classifier().requires_grad_(True)


def takes_interpolation(model: PreTrainedModel) -> bool:
    """Whether ``forward`` takes ``interpolate_pos_encoding`` (ViT, DeiT, BEiT, Swin) for other sizes."""
    return "interpolate_pos_encoding" in inspect.signature(model.forward).parameters


def logits(net: PreTrainedModel, pixel_values: torch.Tensor, interpolates: bool) -> torch.Tensor:
    """The network's logits for a preprocessed batch; families that take it interpolate their position
    embeddings when the batch is not at their config's ``image_size``."""
    pixel_values = pixel_values.to(net.dtype)  # bf16-true keeps the weights in bf16; autocast needs no cast
    if not interpolates:
        return net(pixel_values=pixel_values).logits
    interpolate = tuple(pixel_values.shape[-2:]) != (getattr(net.config, "image_size", None),) * 2
    return net(pixel_values=pixel_values, interpolate_pos_encoding=interpolate).logits


def smallest_windowed_size(config: PretrainedConfig) -> int | None:
    """For window-attention models (Swin): the smallest input whose every stage is at least one window
    wide (padded to whole patches and windows, halved per stage). None for other families."""
    window, patch, depths = (getattr(config, key, None) for key in ("window_size", "patch_size", "depths"))
    if not (isinstance(window, int) and isinstance(patch, int) and depths):
        return None
    size = patch
    while True:
        side = math.ceil(size / patch)
        for _ in range(len(depths) - 1):
            side = math.ceil(side / 2)
        if side >= window:
            return size
        size += 1


def check_input_size(model: PreTrainedModel, size: int, native: int) -> None:
    """Run one blank image of ``size`` through the model, so a size it cannot take is a one-line error
    now rather than a traceback after the data is read."""
    kwargs = {"interpolate_pos_encoding": True} if takes_interpolation(model) else {}
    training = model.training
    try:
        with torch.no_grad():
            pixels = torch.zeros(1, getattr(model.config, "num_channels", 3), size, size)
            model.eval()(pixel_values=pixels, **kwargs)  # eval: no statistics updated
    except Exception as err:  # each family raises its own type
        smallest = smallest_windowed_size(model.config)
        valid = f"sizes from {smallest} up work, {native} is native" if smallest else f"its native size is {native}"
        raise ConfigError(
            f"model.input.size={size} does not work with this {model.config.model_type} model ({first_line(err)}); "
            f"{valid} (size: null uses the native size)"
        ) from None
    finally:
        model.train(training)


def class_names_of(class_names: list[str] | None, config: dict[str, Any] | None, pretrained: str | None) -> list[str]:
    """``class_names``, else the labels ``id2label`` holds in the network's starting ``config`` (a checkpoint's
    architecture; a run's config.yaml may give one without labels), else those of the ``pretrained``
    classifier (e.g. an export of this package, predicting new images without a checkpoint)."""
    labelled = [config["id2label"]] if config and "id2label" in config else []
    if not class_names and not labelled and pretrained is not None:
        try:
            config = AutoConfig.from_pretrained(pretrained)
        except (OSError, ValueError):
            config = None  # loading the model itself says why, in one line
        names = list(config.id2label.values()) if config is not None else []
        if names != [f"LABEL_{i}" for i in range(len(names))]:  # not transformers' placeholders (nor none)
            labelled = [config.id2label]
    if not class_names and labelled:
        id2label = {int(i): name for i, name in labelled[0].items()}
        class_names = [id2label[i] for i in sorted(id2label)]
    if not class_names:
        raise ConfigError(
            "model.class_names is empty: give --ckpt_path (a checkpoint of `eurosat fit` knows its classes), "
            "model.class_names, or a data.root whose class folders name them"
        )
    return list(class_names)


def check_normalisation(mean: list[float], std: list[float], channels: int) -> None:
    """One mean and one std per input channel, or a one-line error before any work."""
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(
            f"model.input.mean has {len(mean)} and model.input.std {len(std)} values for a network of {channels} "
            "input channels; give one per channel (band), or null to take the data's or the model's own"
        )
