"""Images/s (and on GPUs model FLOP utilisation) of every fit, measured without stalling the device."""

import time
from typing import Any

import torch
from lightning.fabric.utilities.throughput import Throughput, get_available_flops
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

COMPUTE_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16, "64": torch.float64}
"""What the matmuls of a ``trainer.precision`` run in, by its prefix (fp32 otherwise), for the peak FLOP/s."""


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
    training = pl_module.net.training
    pl_module.net.eval()  # BatchNorm's running statistics must not learn this blank image
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        pl_module.classify(pixels)
    pl_module.net.train(training)
    return counter.get_total_flops()


def synchronized_clock(trainer: Trainer) -> float:
    """The time once the device has done all the work queued so far."""
    if trainer.strategy.root_device.type == "cuda":
        torch.cuda.synchronize(trainer.strategy.root_device)
    return time.perf_counter()


class TrainingThroughput(Callback):
    """Images/s of ``fit``, in Lightning's ``Throughput`` figures: ``train/device/samples_per_sec``
    (over each window of ``window_size`` training batches; ``train/samples_per_sec`` for all processes
    under DDP), ``train/device/flops_per_sec`` (a training image counting 3 forward passes) and, with a
    known peak, ``train/device/mfu``; ``validate/...`` the same over each whole validation.

    The clock is read after a device synchronisation once per window, not once per batch as in
    Lightning's ``ThroughputMonitor``: each synchronisation stops the host from queueing the next
    step's kernels while the device finishes, which costs a training step some of its speed.

    Args:
        window_size: Training batches in one measurement; a window that validation interrupts is
            dropped, and nothing is logged for an epoch shorter than a window.
        peak_flops: The device's peak FLOP/s that MFU divides by (e.g. 989e12, the dense bf16 peak of
            an H100 or H200); null takes Lightning's table, which lists sparse peaks for some chips
            and does not know others (then no MFU is logged).
    """

    def __init__(self, window_size: int = 50, peak_flops: float | None = None) -> None:
        super().__init__()
        self.window_size = window_size
        self.peak_flops = peak_flops
        self.flops_per_image = 0
        self.throughput: dict[str, Throughput] = {}
        self.started = 0.0
        self.counted = {"batches": 0, "images": 0}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        precision = str(trainer.precision)
        dtype = next((dtype for prefix, dtype in COMPUTE_DTYPES.items() if precision.startswith(prefix)), torch.float32)
        peak = self.peak_flops or get_available_flops(trainer.strategy.root_device, dtype)
        for name in ("train", "validate"):  # a window of 2 clock readings: its start and its end
            self.throughput[name] = Throughput(available_flops=peak, world_size=trainer.world_size, window_size=2)
        if trainer.is_global_zero:
            self.flops_per_image = forward_flops_per_image(pl_module)

    def start(self, trainer: Trainer, name: str, now: float | None = None) -> None:
        """A new window from ``now``, or from a fresh reading of the clock."""
        self.throughput[name].reset()
        self.counted = {"batches": 0, "images": 0}
        self.started = synchronized_clock(trainer) if now is None else now
        self.throughput[name].update(time=0.0, batches=0, samples=0, flops=0)

    def measure(self, trainer: Trainer, name: str, forward_passes: int) -> float:
        """Log the rates since :meth:`start` (from the first process); return the clock's reading."""
        now = synchronized_clock(trainer)
        elapsed = now - self.started
        flops = forward_passes * self.flops_per_image * self.counted["images"]
        self.throughput[name].update(
            time=elapsed, batches=self.counted["batches"], samples=self.counted["images"], flops=flops
        )
        rates = {f"{name}/{key}": value for key, value in self.throughput[name].compute().items()}
        for logger in trainer.loggers if trainer.is_global_zero else []:
            logger.log_metrics(rates, step=trainer.global_step)
        return now

    def count(self, batch: Any) -> None:
        self.counted["batches"] += 1
        self.counted["images"] += images_in(batch)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.start(trainer, "train")

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.count(batch)
        if self.counted["batches"] == self.window_size:
            self.start(trainer, "train", now=self.measure(trainer, "train", forward_passes=3))  # backward: 2x

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self.start(trainer, "validate")

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self.count(batch)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        now = self.measure(trainer, "validate", forward_passes=1) if self.counted["batches"] else None
        self.start(trainer, "train", now=now)  # training resumes: a new window, without validation's time
