"""The pixel path, in one place: what training, augmentation and the Hugging Face export agree on.

Images travel as uint8 ``(3, H, W)`` tensors at their stored size (64x64 for EuroSAT), multispectral
ones as int32 ``(C, H, W)`` holding the stored uint16 values. On the device,
training batches get a random dihedral view (:func:`random_dihedral`); then every batch is resized to
the model's input size, scaled to [0, 1] and normalised (:func:`to_model_input`). The exported image
processor (:func:`image_processor`) does the same three steps on the CPU, so ``transformers.pipeline``
feeds the model what training fed it.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF
from transformers import ViTImageProcessor
from transformers.image_utils import PILImageResampling


def shrinks(stored_size: Sequence[int], size: int) -> bool:
    """Whether resizing images of ``stored_size`` (H, W) to ``size`` x ``size`` shrinks them: only then
    is the resize antialiased (enlarging, 64 -> 224, antialiasing changes nothing but takes a slower kernel)."""
    return size < max(stored_size)


def to_model_input(images: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """A ``(B, C, H, W)`` batch as the model's float input, channels last in memory: resized (bilinear,
    antialiased when shrinking) to ``size`` x ``size`` and normalised with ``mean`` and ``std`` per
    channel. uint8 images (RGB) are scaled to [0, 1] first, as their statistics are; wider integers
    (multispectral reflectance x 10,000, served as int32) are normalised as stored, their statistics
    being in the same units."""
    pixels = TF.to_dtype(images, torch.float32, scale=True) if images.dtype == torch.uint8 else images.float()
    if pixels.shape[-2:] != (size, size):
        antialias = shrinks(pixels.shape[-2:], size)
        pixels = TF.resize(pixels, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=antialias)
    # NHWC: oneDNN and cuDNN run convolutions faster on it (2x on CPU in bf16), the values are the same
    return TF.normalize(pixels, list(mean), list(std)).contiguous(memory_format=torch.channels_last)


def image_processor(size: int, mean: Sequence[float], std: Sequence[float], rescale: bool = True) -> ViTImageProcessor:
    """The Hugging Face image processor that does what :func:`to_model_input` does; ``rescale`` false for
    multispectral images, normalised in stored units."""
    return ViTImageProcessor(
        do_resize=True,
        size={"height": size, "width": size},
        resample=PILImageResampling.BILINEAR,
        do_rescale=rescale,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(mean),
        image_std=list(std),
    )


def random_dihedral(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply to each image of a ``(B, C, H, W)`` batch a random one of the 8 symmetries of a top-down
    view (flips and 90-degree rotations), drawn per image."""
    # a transpose (square images only), a horizontal and a vertical flip, each with probability 1/2,
    # compose to each symmetry equally often; torchvision's v2 transforms draw once per batch instead
    ops = [lambda x: x.flip(-1), lambda x: x.flip(-2)]
    if images.shape[-1] == images.shape[-2]:
        ops.insert(0, lambda x: x.transpose(-1, -2))
    for op in ops:
        chosen = torch.rand(len(images), device=images.device, generator=generator) < 0.5
        images = torch.where(chosen[:, None, None, None], op(images), images)
    return images


def dihedral_views(images: torch.Tensor) -> list[torch.Tensor]:
    """The 8 symmetries of a top-down view of a square ``(B, C, H, W)`` batch (the 4 flips of a
    non-square one): the views test-time augmentation averages over."""
    flips = [images, images.flip(-1), images.flip(-2), images.flip(-1, -2)]
    if images.shape[-1] != images.shape[-2]:
        return flips
    return flips + [view.transpose(-1, -2) for view in flips]


def stretched(pixels: np.ndarray, low: float = 2, high: float = 98) -> np.ndarray:
    """Pixels ``(..., 3, H, W)`` of any range as uint8 to look at: each channel stretched linearly from its
    ``low``-th to its ``high``-th percentile (over all the images given) to [0, 255], and clipped."""
    channels = np.moveaxis(np.asarray(pixels, dtype=np.float64), -3, 0)
    bounds = np.percentile(channels.reshape(len(channels), -1), [low, high], axis=1)
    lo, hi = (b.reshape(-1, *[1] * (channels.ndim - 1)) for b in bounds)
    scaled = (channels - lo) / np.maximum(hi - lo, 1e-6)
    return np.moveaxis((np.clip(scaled, 0, 1) * 255).round().astype(np.uint8), 0, -3)
