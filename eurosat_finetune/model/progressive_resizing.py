"""Progressive resizing: the first training epochs on smaller images, whose steps cost less, growing to
``model.input.size`` by a given epoch (as FFCV's ImageNet recipes and fast.ai's do). Validation, test
and predict always run at ``model.input.size``, which checkpoints and exports keep.

For convolutional networks, which take any input size; a ViT would interpolate its position
embeddings at every step.
"""

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn

SIZE_STEP = 8  # sizes are rounded to multiples of 8 pixels, a handful of shapes for the kernels to meet


class ProgressiveResizing(Callback):
    def __init__(self, min_size: int, end_epoch: int, start_epoch: int = 0) -> None:
        """
        Args:
            min_size: Side length of the training images up to ``start_epoch``.
            end_epoch: First epoch trained at ``model.input.size``; the size grows linearly (in steps of
                8 pixels) from ``start_epoch`` to it.
            start_epoch: Last epoch trained at ``min_size``.
        """
        super().__init__()
        if not 0 <= start_epoch < end_epoch:
            raise ValueError(
                f"ProgressiveResizing needs 0 <= start_epoch < end_epoch, got {start_epoch} and {end_epoch}"
            )
        self.min_size, self.start_epoch, self.end_epoch = min_size, start_epoch, end_epoch
        self.full_size: int | None = None

    def size_at(self, epoch: int, full_size: int) -> int:
        size = np.interp(epoch, [self.start_epoch, self.end_epoch], [self.min_size, full_size])
        return min(full_size, round(float(size) / SIZE_STEP) * SIZE_STEP)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.full_size = pl_module.image_size

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # from the epoch alone, so a resumed run trains each epoch at the size the first run would have
        pl_module.image_size = self.size_at(trainer.current_epoch, self.full_size)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # (`eurosat validate` runs at model.input.size as it is)
            pl_module.image_size = self.full_size

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # after validation mid-epoch (val_check_interval < 1) training goes on at the epoch's size
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            pl_module.image_size = self.size_at(trainer.current_epoch, self.full_size)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.image_size = self.full_size  # test, predict and the exports after fit
