"""Export a fine-tuned classifier as a Hugging Face model directory that other tools load."""

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import ViTForImageClassification, ViTImageProcessor
from transformers.image_utils import PILImageResampling

from eurosat_finetune.errors import OutputError

if TYPE_CHECKING:
    from eurosat_finetune.model import ViTClassifier


def image_processor_for(model: "ViTClassifier") -> ViTImageProcessor:
    """The image processor that preprocesses as the model does on its device."""
    return ViTImageProcessor(
        do_resize=True,
        size={"height": model.image_size, "width": model.image_size},
        resample=PILImageResampling.BILINEAR,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=model.image_mean,
        image_std=model.image_std,
    )


def vit_at_input_size(vit: ViTForImageClassification, size: int) -> ViTForImageClassification:
    """``vit`` with ``config.image_size`` equal to ``size``, the size it was trained at.

    A ViT fine-tuned at another size than its native one (e.g. 64 px from a 224 px checkpoint) uses
    interpolated position embeddings; they are baked in here, so tools that never pass
    ``interpolate_pos_encoding`` (such as ``pipeline``) get the same outputs.
    """
    if size == vit.config.image_size:
        return vit
    config = copy.deepcopy(vit.config)
    config.image_size = size
    state = vit.state_dict()
    tokens = (size // config.patch_size) ** 2 + 1
    with torch.no_grad():
        state["vit.embeddings.position_embeddings"] = vit.vit.embeddings.interpolate_pos_encoding(
            torch.zeros(1, tokens, config.hidden_size), size, size
        ).clone()
    resized = ViTForImageClassification(config)
    resized.load_state_dict(state)
    return resized


def export_huggingface(
    model: "ViTClassifier", directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None
) -> Path:
    """Write ``model``'s ViT (with ``id2label`` holding the class names) and its image processor;
    with ``state_dict`` (a checkpoint's), those weights instead of the model's current ones.

    The directory must not exist yet or be empty: an earlier export is never overwritten.
    """
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise OutputError(f"{directory} already holds files; choose another --export.dirpath or remove it")
    vit = model.vit
    if state_dict is not None:
        vit = copy.deepcopy(vit)
        vit.load_state_dict({k.removeprefix("vit."): v for k, v in state_dict.items() if k.startswith("vit.")})
    vit_at_input_size(vit, model.image_size).save_pretrained(directory)
    image_processor_for(model).save_pretrained(directory)
    return directory
