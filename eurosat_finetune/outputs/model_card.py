"""The model card (``README.md``) of a Hugging Face export, in the layout the hub shows: YAML metadata,
then what the model is, what it was trained on and how, how well it did, its limits and how to load it.
Every fact comes from the run: the data describes itself (:class:`DatasetDescription`), the figures
are the run's own."""

from typing import Any

import yaml
from lightning.pytorch import LightningModule, Trainer

from eurosat_finetune import __version__
from eurosat_finetune.data.bands import EUROSAT_MS_BANDS, stored_indices
from eurosat_finetune.data.patches.description import DatasetDescription
from eurosat_finetune.model.pretrained_weights import is_weights_source
from eurosat_finetune.outputs.run_record import interval_of, record_of, test_figures
from eurosat_finetune.statistics.classification import RESAMPLES


def training_settings(pl_module: LightningModule, trainer: Trainer, data: DatasetDescription | None) -> list[str]:
    """The settings that shaped the weights, as read from the optimizer, scheduler, data and model."""
    optimizer = trainer.optimizers[0] if trainer.optimizers else None
    lines = []
    if optimizer is not None:
        group = optimizer.param_groups[-1]  # the head's group: the full rate under layer-wise decay
        rate = group.get("max_lr", group.get("initial_lr", group["lr"]))
        # the configured decay: the head's last group may be its biases, exempt from it
        decay = optimizer.defaults.get("weight_decay", 0)
        exempt = any(each.get("weight_decay") == 0 for each in optimizer.param_groups)
        spared = " (none on norms and biases)" if decay and exempt else ""
        lines.append(f"optimizer {type(optimizer).__name__}, learning rate {rate:g}, weight decay {decay:g}{spared}")
    for config in trainer.lr_scheduler_configs:
        name = type(config.scheduler).__name__
        lines.append(f"scheduler {name}, stepped every {config.frequency} {config.interval}(s)")
    batch = f", batch size {data.batch_size}" if data is not None else ""
    lines.append(f"{trainer.current_epoch} epoch(s), {trainer.global_step} optimizer steps{batch}")
    lines.append(f"input {pl_module.image_size} x {pl_module.image_size} px, precision {trainer.precision}")
    recipe = {"augment": data.augment} if data is not None else {}
    options = pl_module.options
    for key in ("label_smoothing", "class_weights", "mixup_alpha", "cutmix_alpha"):
        recipe[key] = getattr(options.loss, key)
    recipe["layer_decay"] = options.optimization.layer_decay
    recipe["warmup_steps"] = options.optimization.warmup_steps
    recipe["freeze_backbone"] = options.network.freeze_backbone
    lines.append(", ".join(f"{key} {value}" for key, value in recipe.items()))
    return lines


TTA_NOTE = (
    "The test figures include test-time augmentation (`--model.tta true`): the mean of the class probabilities "
    "of the 8 flips and 90-degree rotations of each image. The validation figures do not, nor does the exported "
    "model, which classifies each image once."
)

INTERVALS_NOTE = (
    "In brackets, 95% intervals: Wilson's for accuracy (the images right of the images evaluated), a bootstrap "
    f"over the test images (BCa, {RESAMPLES:,} resamples) for macro F1. They say how much the figure would move "
    "on another sample of the same kind of images, not on other kinds."
)

EUROSAT_MS_UNITS = "Sentinel-2 Level-1C top-of-atmosphere reflectance x 10,000, uint16"


def results(trainer: Trainer, tested: bool, tta: bool = False) -> list[str]:
    """Table rows: the best validation epoch's figures (the last validation's without a run record),
    and the test's if ``tested`` (read when the test ends, whatever order the callbacks run in), named
    as test-time augmented if ``tta`` (validation never is)."""
    record = record_of(trainer)
    rows = []
    if record is not None:
        epoch, val = record.best_val(trainer)
        if val:
            rows.append(row(f"validation (epoch {epoch}, the best)", val, "val"))
    else:
        val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        if val:
            rows.append(row("validation (the last)", val, "val"))
    test = test_figures(trainer)
    if tested and test:
        rows.append(row("test, with test-time augmentation" if tta else "test", test, "test"))
    return rows


def bands_units(data: DatasetDescription | None) -> str:
    """What the stored values of multispectral bands are."""
    return EUROSAT_MS_UNITS if data is not None and data.is_eurosat else "uint16, in the units the GeoTIFFs store"


def data_section(data: DatasetDescription | None, pl_module: LightningModule) -> list[str]:
    if data is None:
        return ["The datamodule of this run does not describe its data."]
    height, width = data.image_size
    names = {"train": "training", "val": "validation", "test": "test"}
    sizes = ", ".join(f"{count} {names[split]}" for split, count in data.split_sizes.items())
    what = f"{data.name}: {height} x {width} px images in `{data.folder}`"
    if data.is_eurosat:
        kind = "13-band Sentinel-2 Level-1C" if data.bands is not None else "Sentinel-2 true-colour"
        what += f" (Helber et al. 2019: {kind} patches, 10 m per pixel)"
    lines = [f"{what}; {sizes} images, from {data.split_recipe}; split fingerprint `{data.split_fingerprint}`."]
    if data.bands is not None:
        # the network's own statistics: what its input is normalised with
        stats = zip(data.bands, pl_module.image_mean, pl_module.image_std, strict=True)
        lines += [
            "",
            f"Trained on bands {', '.join(data.bands)}, in that order ({bands_units(data)}); each is normalised "
            "in its stored units, with no rescaling, as (value - mean) / std, with mean ± std "
            + ", ".join(f"{band} {mean:g} ± {std:g}" for band, mean, std in stats)
            + ".",
        ]
    return lines


def intended_use(data: DatasetDescription | None, size: int) -> str:
    if data is not None and data.is_eurosat and data.bands is not None:
        height, width = data.image_size
        return (
            f"Classifying {height} x {width} px Sentinel-2 Level-1C patches as EuroSAT MS stores them "
            f"({EUROSAT_MS_UNITS}), of which it reads bands {', '.join(data.bands)}, into the classes above; "
            f"they are resized to {size} x {size} as in the code below. Surface reflectance (Level-2A), other "
            "sensors, resolutions, seasons, regions outside Europe, or images that show several classes at once "
            "are outside what it was trained on, and it always answers with one of its classes. For whole scenes, "
            "`eurosat predict` slides it over the scene and maps the classes."
        )
    if data is not None and data.is_eurosat:
        return (
            "Classifying 64 x 64 px Sentinel-2 RGB patches (8-bit true colour, as EuroSAT RGB) into the classes "
            f"above; the image processor resizes them to {size} x {size}. Other sensors, resolutions, seasons, "
            "regions outside Europe, or images that show several classes at once are outside what it was trained "
            "on, and it always answers with one of its classes. For whole scenes, `eurosat predict` slides it over "
            "the scene and maps the classes."
        )
    like = f"{data.image_size[0]} x {data.image_size[1]} px images like those it was trained on" if data else "images"
    resizes = "they are resized" if data is not None and data.bands is not None else "the image processor resizes them"
    return (
        f"Classifying {like} into the classes above; {resizes} to {size} x {size}. "
        "Images unlike the training data are outside what it was trained on, and it always answers with one "
        "of its classes."
    )


def model_card(pl_module: LightningModule, trainer: Trainer, tested: bool) -> str:
    """The card's text: every figure comes from this run (best validation epoch; the test if ``tested``)."""
    describe = getattr(trainer.datamodule, "description", None)
    data: DatasetDescription | None = describe() if callable(describe) else None
    base = pl_module.pretrained_from
    classes = pl_module.class_names
    tags = ["image-classification", "eurosat-finetune"]
    metadata: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "image-classification", "tags": tags}
    if data is not None and data.is_eurosat:
        tags[1:1] = ["remote-sensing", "eurosat", "sentinel-2"]
        metadata["datasets"] = [data.name]
    metadata["metrics"] = ["accuracy", "f1"]
    weights = base is not None and is_weights_source(base)
    if base is not None and not weights:  # the hub's field names hub models only
        metadata["base_model"] = base
    origin = f"fine-tuned from [`{base}`](https://huggingface.co/{base})" if base else "trained from scratch"
    if weights:
        origin = f"fine-tuned from the Sentinel-2 pretrained weights `{base}` (timm)"
    parameters = sum(p.numel() for p in pl_module.net.parameters())
    subject = f"land-cover classifier for {data.name}" if data and data.is_eurosat else "image classifier"
    tta = tested and bool(pl_module.hparams.get("tta"))  # validation never averages views
    return "\n".join(
        [
            "---",
            yaml.safe_dump(metadata, sort_keys=False).strip(),
            "---",
            "",
            f"# {pl_module.net.config.model_type} {subject}",
            "",
            f"A `{type(pl_module.net).__name__}` ({parameters / 1e6:.1f} M parameters), {origin} with "
            f"eurosat-finetune {__version__} to classify images into {len(classes)} classes.",
            "",
            "## Data",
            "",
            *data_section(data, pl_module),
            "",
            "Classes (label order): " + ", ".join(f"{i} `{name}`" for i, name in enumerate(classes)) + ".",
            "",
            "## Training",
            "",
            *(f"- {line}" for line in training_settings(pl_module, trainer, data)),
            "",
            "## Results",
            "",
            "| split | accuracy | macro F1 | loss |",
            "| --- | --- | --- | --- |",
            *results(trainer, tested, tta),
            "",
            INTERVALS_NOTE,
            "",
            *([TTA_NOTE, ""] if tta else []),
            "## Intended use and limits",
            "",
            intended_use(data, pl_module.image_size),
            "",
            "## How to use",
            "",
            "```python",
            *usage(pl_module, data),
            "```",
            "",
        ]
    )


def usage(pl_module: LightningModule, data: DatasetDescription | None) -> list[str]:
    """Code that classifies one image as stored: through ``pipeline`` for RGB; for multispectral bands,
    which the image processor cannot resize, the steps of training in torch, on a 13-band GeoTIFF."""
    if pl_module.input_bands is None:
        return [
            "from transformers import pipeline",
            "",
            'classify = pipeline("image-classification", model="path/to/this/folder")',
            f'classify("image.jpg")  # [{{"label": "{pl_module.class_names[0]}", "score": 0.99}}, ...]',
        ]
    names = list(pl_module.input_bands["names"])
    height, width = data.image_size if data is not None else ("H", "W")
    return [
        "import numpy as np",
        "import rasterio",
        "import torch",
        "from torch.nn import functional as F",
        "from transformers import AutoImageProcessor, AutoModelForImageClassification",
        "",
        'folder = "path/to/this/folder"',
        "model = AutoModelForImageClassification.from_pretrained(folder).eval()",
        "processor = AutoImageProcessor.from_pretrained(folder)  # the input size, mean and std of training",
        f"# the {len(EUROSAT_MS_BANDS)} bands as stored: {', '.join(EUROSAT_MS_BANDS)} ({bands_units(data)})",
        'with rasterio.open("patch.tif") as source:',
        f"    patch = source.read()  # ({len(EUROSAT_MS_BANDS)}, {height}, {width})",
        f"bands = {stored_indices(names)}  # {', '.join(names)}: the bands trained on, in training's order",
        "pixels = torch.from_numpy(patch[bands].astype(np.float32))[None]  # in stored units: no rescaling",
        'size = processor.size["height"]',
        "shrinks = size < max(pixels.shape[-2:])  # training antialiases only when it shrinks",
        'pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=shrinks)',
        "mean = torch.tensor(processor.image_mean)[:, None, None]",
        "std = torch.tensor(processor.image_std)[:, None, None]",
        "with torch.no_grad():",
        "    probabilities = model(pixel_values=(pixels - mean) / std).logits.softmax(dim=-1)[0]",
        "label = int(probabilities.argmax())",
        "print(model.config.id2label[label], float(probabilities[label]))",
    ]


def row(name: str, metrics: dict[str, float], stage: str) -> str:
    """A table row: accuracy and macro F1 with their 95% intervals where the run has them, and the loss."""
    cells = []
    for key in ("acc", "macro_f1", "loss"):
        cell = f"{metrics.get(f'{stage}_{key}', float('nan')):.4f}"
        bounds = interval_of(metrics, f"{stage}_{key}")
        cells.append(cell if bounds is None else f"{cell} ({bounds})")
    return f"| {name} | " + " | ".join(cells) + " |"
