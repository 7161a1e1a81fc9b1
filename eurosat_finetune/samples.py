"""A grid of validation images with their true and predicted classes, in TensorBoard."""

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure

from eurosat_finetune.runs import tensorboard


class ValidationSamples(Callback):
    """Log a grid of validation images with their true and predicted classes to TensorBoard.

    Once per validation epoch, from the first batch; skipped during the sanity check and when the run
    has no TensorBoard logger.

    Args:
        num_images: Images in the grid; 0 disables it.
    """

    def __init__(self, num_images: int = 16) -> None:
        self.num_images = num_images

    @rank_zero_only
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        writer = tensorboard(trainer)
        if batch_idx != 0 or dataloader_idx != 0 or trainer.sanity_checking or not self.num_images or writer is None:
            return
        images, labels = batch
        count = min(self.num_images, len(images))
        columns = min(count, 8)
        rows = -(-count // columns)
        fig = Figure(figsize=(1.6 * columns, 1.8 * rows), layout="constrained")
        axes = fig.subplots(rows, columns, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i >= count:
                continue
            truth, pred = pl_module.class_names[labels[i]], pl_module.class_names[outputs["preds"][i]]
            ax.imshow(images[i].permute(1, 2, 0).cpu().numpy())
            ax.set_title(f"{truth}\n→ {pred}", fontsize=6, color="green" if truth == pred else "red")
        writer.add_figure("val/samples", fig, global_step=trainer.global_step)
