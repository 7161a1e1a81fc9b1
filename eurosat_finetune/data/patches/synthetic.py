"""Synthetic stand-ins for EuroSAT RGB and EuroSAT MS, for offline demos, tests and benchmarks.

It writes JPEGs in the EuroSAT layout (``<root>/EuroSAT_RGB/<Class>/<Class>_<n>.jpg``) with the ten
EuroSAT class names. Each class has its own colour palette and stripe orientation, blurred by noise,
so a tiny model can learn it in a minute but not from a single pixel. None of it is real data.
"""

import math
from pathlib import Path

import numpy as np
from PIL import Image

from eurosat_finetune.data.patches.published import EUROSAT_CLASSES

SAMPLE_TMP_NAME = ".EuroSAT_RGB.sample-tmp"
"""The folder the sample is written into before it is renamed to ``EuroSAT_RGB``."""

SAMPLE_MARKER = "SYNTHETIC_SAMPLE.txt"
"""A file in the sample's folder that says what it is (to people, and to the model card)."""


def is_synthetic_sample(folder: Path) -> bool:
    return (folder / SAMPLE_MARKER).is_file()


def _class_image(class_index: int, num_classes: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One ``size`` x ``size`` RGB uint8 image: class-specific stripes on a class-specific colour."""
    angle = math.pi * class_index / num_classes + rng.normal(0, 0.15)
    period = 6 + 2 * (class_index % 3) + rng.uniform(-0.5, 0.5)
    phase = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    stripes = 0.5 + 0.5 * np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period + phase)
    hue = 2 * math.pi * class_index / num_classes
    base = 0.5 + 0.06 * np.array([math.cos(hue), math.cos(hue + 2.1), math.cos(hue + 4.2)], np.float32)
    image = base * (0.6 + 0.4 * stripes[..., None]) + rng.normal(0, 0.3, (size, size, 3))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_sample_dataset(
    root: str | Path,
    images_per_class: int = 40,
    image_size: int = 64,
    class_names: tuple[str, ...] = EUROSAT_CLASSES,
    seed: int = 0,
) -> Path:
    """Write the synthetic dataset under ``root/EuroSAT_RGB`` and return that folder.

    The output is a pure function of the arguments. The folder is written under a temporary name and
    renamed at the end, so an interrupted run never leaves a partial dataset that looks complete.
    """
    root = Path(root)
    final = root / "EuroSAT_RGB"
    if final.exists():
        raise FileExistsError(f"{final} already exists; remove it or use it as it is")
    tmp = root / SAMPLE_TMP_NAME
    rng = np.random.default_rng(seed)
    for index, name in enumerate(class_names):
        class_dir = tmp / name
        class_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, images_per_class + 1):
            pixels = _class_image(index, len(class_names), image_size, rng)
            Image.fromarray(pixels).save(class_dir / f"{name}_{n}.jpg", quality=90)
    (tmp / SAMPLE_MARKER).write_text(
        f"A synthetic sample in EuroSAT layout written by eurosat-finetune (seed {seed}), not real data.\n"
    )
    tmp.rename(final)
    return final
