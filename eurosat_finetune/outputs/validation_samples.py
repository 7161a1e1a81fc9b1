"""A grid of validation images with their true class, predicted class and its probability, in TensorBoard."""

from collections.abc import Sequence

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure

from eurosat_finetune.data.bands import true_colour_channels
from eurosat_finetune.outputs.run_folder import tensorboard
from eurosat_finetune.pixels import stretched

RIGHT, WRONG = "#1a7f37", "#cf222e"


def stratified_pick(labels: Sequence[int], count: int) -> list[int]:
    """``count`` indices that take the classes in turn (the first image of each class, then the second
    ...), so every class shows; a pure function of the labels, hence the same images every epoch."""
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(index)
    queues = [by_class[label] for label in sorted(by_class)]
    picked: list[int] = []
    for rank in range(max((len(q) for q in queues), default=0)):
        picked += [q[rank] for q in queues if rank < len(q)]
    return picked[:count]


def sample_grid(images: torch.Tensor, truth: list[str], predicted: list[str], probability: list[float]) -> Figure:
    """Each image titled with its true class and the predicted one with its probability; misclassified
    images in a red frame with red titles, right ones in green."""
    columns = min(len(images), 8)
    rows = -(-len(images) // columns)
    fig = Figure(figsize=(1.7 * columns, 1.95 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(images):
            ax.axis("off")
            continue
        colour = RIGHT if truth[i] == predicted[i] else WRONG
        ax.imshow(images[i].permute(1, 2, 0).numpy())
        ax.set_title(f"{truth[i]}\n→ {predicted[i]} {probability[i]:.2f}", fontsize=6, color=colour)
        for spine in ax.spines.values():
            spine.set_color(colour)
            spine.set_linewidth(1 if truth[i] == predicted[i] else 3)
    return fig


def true_colour(images: torch.Tensor, bands: list[str] | None) -> torch.Tensor:
    """Images to show as uint8 RGB: RGB images as they are; multispectral ones as B04, B03, B02 (when all
    three were trained on, else the first band as grey), each channel stretched from its 2nd to its 98th
    percentile."""
    if bands is None:
        return images
    return torch.from_numpy(stretched(images[:, true_colour_channels(bands)].numpy()))


class ValidationSamples(Callback):
    """Log a grid of validation images to TensorBoard (``val/samples``) after each validation epoch:
    a fixed, stratified pick across the classes (the same images every epoch, so their predictions can
    be watched changing), each with its true class, predicted class and probability; misclassified
    ones framed in red. Skipped in the sanity check and when the run has no TensorBoard logger.

    Args:
        num_images: Images in the grid; 0 disables it.
    """

    def __init__(self, num_images: int = 16) -> None:
        self.num_images = num_images

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        writer = tensorboard(trainer)
        dataset = getattr(trainer.datamodule, "val_dataset", None)
        if trainer.sanity_checking or not self.num_images or writer is None or dataset is None:
            return
        picked = stratified_pick(dataset.labels, self.num_images)
        images = torch.stack([dataset[i][0] for i in picked])
        with torch.no_grad():
            probs = pl_module(images.to(pl_module.device)).float().softmax(dim=-1).cpu()
        names = pl_module.class_names
        truth = [names[dataset.labels[i]] for i in picked]
        predicted = [names[int(k)] for k in probs.argmax(dim=-1)]
        bands = (pl_module.input_bands or {}).get("names")
        shown = true_colour(images, bands)
        fig = sample_grid(shown, truth, predicted, np.asarray(probs.max(dim=-1).values).tolist())
        writer.add_figure("val/samples", fig, global_step=trainer.global_step)
