"""The model card (``README.md``) of a Hugging Face export, in the layout the hub shows: YAML metadata,
then what the model is, what it was trained on and how, how well it did, its limits and how to load it."""

from typing import Any

import yaml
from lightning.pytorch import LightningModule, Trainer

from eurosat_finetune.summary import record_of


def training_settings(pl_module: LightningModule, trainer: Trainer) -> list[str]:
    """The settings that shaped the weights, as read from the optimizer, scheduler, data and model."""
    optimizer = trainer.optimizers[0] if trainer.optimizers else None
    hparams, data = pl_module.hparams, trainer.datamodule
    lines = []
    if optimizer is not None:
        group = optimizer.param_groups[-1]  # the head's group: the full rate under layer-wise decay
        rate = group.get("max_lr", group.get("initial_lr", group["lr"]))
        decay = group.get("weight_decay", 0)
        lines.append(f"optimizer {type(optimizer).__name__}, learning rate {rate:g}, weight decay {decay:g}")
    for config in trainer.lr_scheduler_configs:
        name = type(config.scheduler).__name__
        lines.append(f"scheduler {name}, stepped every {config.frequency} {config.interval}(s)")
    lines.append(
        f"{trainer.current_epoch} epoch(s), {trainer.global_step} optimizer steps, batch size {data.batch_size}"
    )
    lines.append(f"input {pl_module.image_size} x {pl_module.image_size} px, precision {trainer.precision}")
    recipe = {
        "augment": data.augment,
        "label_smoothing": hparams.label_smoothing,
        "class_weights": hparams.class_weights,
        "mixup_alpha": hparams.mixup_alpha,
        "cutmix_alpha": hparams.cutmix_alpha,
        "layer_decay": hparams.layer_decay,
        "warmup_steps": hparams.warmup_steps,
        "freeze_backbone": hparams.freeze_backbone,
    }
    lines.append(", ".join(f"{key} {value}" for key, value in recipe.items()))
    return lines


def split_description(data: Any) -> str:
    sizes = f"{len(data.train_dataset)} training, {len(data.val_dataset)} validation, {len(data.test_dataset)} test"
    if data.split_lists is not None:
        how = f"the published split lists {data.hparams.split_files}"
    else:
        how = f"a stratified split (val_fraction {data.val_fraction}, test_fraction {data.test_fraction}, "
        how += f"split_seed {data.split_seed})"
    subset = f"; trained on a subset of {data.train_size}" if data.train_size is not None else ""
    return f"{sizes} images, from {how}{subset}; split fingerprint `{data.split_fingerprint}`"


def model_card(pl_module: LightningModule, trainer: Trainer, tested: bool) -> str:
    """The card's text: every figure comes from this run (best validation epoch; the test if ``tested``)."""
    record = record_of(trainer)
    epoch, val = record.best_val(trainer)
    base = pl_module.pretrained_from
    classes = pl_module.class_names
    metadata: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "image-classification",
        "tags": ["image-classification", "remote-sensing", "eurosat", "sentinel-2", "eurosat-finetune"],
        "datasets": ["EuroSAT RGB"],
        "metrics": ["accuracy", "f1"],
    }
    if base is not None:
        metadata["base_model"] = base
    results = [row(f"validation (epoch {epoch}, the best)", val, "val")] if val else []
    if tested and record.test:
        results.append(row("test", record.test, "test"))
    origin = f"fine-tuned from [`{base}`](https://huggingface.co/{base})" if base else "trained from scratch"
    size = pl_module.image_size
    parameters = sum(p.numel() for p in pl_module.net.parameters())
    return "\n".join(
        [
            "---",
            yaml.safe_dump(metadata, sort_keys=False).strip(),
            "---",
            "",
            f"# {pl_module.net.config.model_type} land-cover classifier for EuroSAT RGB",
            "",
            f"A `{type(pl_module.net).__name__}` ({parameters / 1e6:.1f} M parameters), {origin} with "
            f"eurosat-finetune to classify Sentinel-2 RGB image patches into {len(classes)} land-cover classes.",
            "",
            "## Data",
            "",
            f"The images in `{trainer.datamodule.listing.folder}` (for EuroSAT RGB, Helber et al. 2019: 64 x 64 px "
            f"Sentinel-2 true-colour patches, 10 m per pixel): {split_description(trainer.datamodule)}.",
            "",
            "Classes (label order): " + ", ".join(f"{i} `{name}`" for i, name in enumerate(classes)) + ".",
            "",
            "## Training",
            "",
            *(f"- {line}" for line in training_settings(pl_module, trainer)),
            "",
            "## Results",
            "",
            "| split | accuracy | macro F1 | loss |",
            "| --- | --- | --- | --- |",
            *results,
            "",
            "## Intended use and limits",
            "",
            "Classifying 64 x 64 px Sentinel-2 RGB patches (8-bit true colour, as EuroSAT RGB) into the classes "
            f"above; the image processor resizes them to {size} x {size}. Other sensors, resolutions, seasons, "
            "regions outside Europe, or images that show several classes at once are outside what it was trained "
            "on, and it always answers with one of its classes. For whole scenes, `eurosat predict` slides it over "
            "the scene and maps the classes.",
            "",
            "## How to use",
            "",
            "```python",
            "from transformers import pipeline",
            "",
            'classify = pipeline("image-classification", model="path/to/this/folder")',
            'classify("patch.jpg")  # [{"label": "Forest", "score": 0.99}, ...]',
            "```",
            "",
        ]
    )


def row(name: str, metrics: dict[str, float], stage: str) -> str:
    values = (metrics.get(f"{stage}_{key}", float("nan")) for key in ("acc", "macro_f1", "loss"))
    return f"| {name} | " + " | ".join(f"{value:.4f}" for value in values) + " |"
