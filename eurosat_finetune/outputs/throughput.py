"""Images/s (and on GPUs model FLOP utilisation) of every fit, logged by Lightning's ``ThroughputMonitor``."""

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ThroughputMonitor
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from eurosat_finetune.lightning_private import set_available_flops


def images_in(batch: Any) -> int:
    """Images in a training or validation batch ``(images, labels)``."""
    return len(batch[1])


def forward_flops_per_image(pl_module: LightningModule) -> int:
    """FLOPs of one forward pass of one image at the model's input size, counted by PyTorch's
    ``FlopCounterMode`` (the math attention kernel, whose matmuls it sees on every device)."""
    parameter = next(pl_module.net.parameters())
    channels = len(pl_module.image_mean)  # one mean per input channel
    pixels = torch.zeros(1, channels, pl_module.image_size, pl_module.image_size, device=parameter.device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        pl_module.classify(pixels)
    return counter.get_total_flops()


class TrainingThroughput(ThroughputMonitor):
    """Lightning's ``ThroughputMonitor`` for this package's batches, in ``fit``: logs
    ``train/samples_per_sec`` (images/s over the last ``window_size`` batches, all processes) and, on
    GPUs whose peak FLOP/s Lightning knows, ``train/device/mfu``, counting a training step as 3
    forward passes. Validation gets the same ``validate/...`` figures.

    Args:
        window_size: Batches the rates are averaged over; nothing is logged before that many.
        peak_flops: The device's peak FLOP/s that MFU divides by (e.g. 989e12, the dense bf16 peak of
            an H100 or H200); null takes Lightning's table, which lists sparse peaks for some chips
            and does not know others (then no MFU is logged).
    """

    def __init__(self, window_size: int = 50, peak_flops: float | None = None) -> None:
        super().__init__(batch_size_fn=images_in, window_size=window_size)
        self.peak_flops = peak_flops
        self.flops_per_image = 0

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.peak_flops is not None:
            set_available_flops(self, self.peak_flops)
        if stage == "fit" and trainer.is_global_zero:
            self.flops_per_image = forward_flops_per_image(pl_module)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        pl_module.flops_per_batch = 3 * self.flops_per_image * images_in(batch)  # forward + backward (2x)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        pl_module.flops_per_batch = self.flops_per_image * images_in(batch)
        super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    # test and predict are not measured: their batches differ, and fit is where the time goes
    def on_test_start(self, trainer: Trainer, *args: Any) -> None:
        pass

    def on_test_batch_end(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        pass

    def on_predict_start(self, trainer: Trainer, *args: Any) -> None:
        pass

    def on_predict_batch_end(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        pass
