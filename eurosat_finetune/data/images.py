"""Reading image files: one decoder for training, caching and prediction."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2.functional import pil_to_tensor, resize

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})

# What Pillow raises for files it cannot decode: not an image, truncated, corrupt, too large.
UNREADABLE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """Sorted image files in ``folder`` (and its sub-folders with ``recursive``)."""
    paths = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_image(path: Path) -> torch.Tensor:
    """Decode any image Pillow reads (JPEG, PNG, TIFF; grey, palette, RGBA, 16-bit) to an RGB uint8
    ``(3, H, W)`` tensor."""
    with Image.open(path) as image:
        if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grey: scale, don't clip, to 8 bits
            image = Image.fromarray((np.asarray(image, dtype=np.float32) / 257).clip(0, 255).astype(np.uint8))
        return pil_to_tensor(image.convert("RGB"))


def read_image_at(path: Path, size: tuple[int, int]) -> tuple[torch.Tensor, bool]:
    """:func:`read_image`, resized (bilinear, antialiased) to ``size`` if it has another; and whether it was."""
    image = read_image(path)
    if tuple(image.shape[-2:]) == size:
        return image, False
    return resize(image, list(size), antialias=True), True


def served(stored: np.ndarray, bands: Sequence[int] | None = None) -> torch.Tensor:
    """Stored pixels (a row of the memory-mapped cache, or a decoded file) as a tensor of their own:
    uint8 as they are, uint16 as int32; only ``bands`` if given."""
    chosen = stored if bands is None else stored[list(bands)]  # indexing a memory map reads just those bands
    if chosen.dtype == np.uint16:
        return torch.from_numpy(chosen.astype(np.int32))  # a copy either way
    return torch.from_numpy(np.array(chosen))  # out of the memory map
