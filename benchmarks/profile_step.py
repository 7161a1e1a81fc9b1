"""Where a training step's time goes: the package's own model, fed batches already on the device, timed
as Lightning runs it in `eurosat fit` and with each suspect put back or taken away in turn; then
torch.profiler over a few steps of the shipped step, with its top kernels and (on a GPU) the fraction
of the step the GPU sat idle (``--profile-steps 0`` leaves the profile out: the timings alone).

Each variant is one `Trainer.fit` of --warmup + --steps optimizer steps on the same few batches
(uint8 64x64 images, as the package's loader serves them; resized and normalised on the device by
the model, as in training; augmentation, which the datamodule adds, is left out). Its time is taken
between device synchronisations before the first timed step and after the last.

    python benchmarks/profile_step.py                 # CPU: the tiny ViT at 32 px, about a minute on 2 cores
    python benchmarks/profile_step.py --model vit-b16 --image-size 224 --batch-size 256 \\
        --precision bf16-mixed --steps 30             # GPU: ViT-B/16 at 224 px, under 5 minutes
"""

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ThroughputMonitor
from lightning.pytorch.loggers import CSVLogger
from pipelines import MODELS  # the same networks as the pipelines benchmark (this folder is on sys.path)
from torch.nn import functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import DataLoader

from eurosat_finetune.data.patches.published import EUROSAT_CLASSES
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.options import InputOptions, NetworkOptions
from eurosat_finetune.outputs.throughput import TrainingThroughput, images_in


class PerStepMetrics(ImageClassifier):
    """Put back: the training metrics updated every step (torchmetrics' input checks and the macro
    averages' bincount read values back) and the loss on the progress bar (read back at each refresh)."""

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self.classify(self.preprocess(images))
        loss = self.training_loss(logits, labels)
        self.train_metrics.update(logits, labels)
        self.log("train_loss", loss, prog_bar=True)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True)
        return loss


class WeightsCopiedEachStep(ImageClassifier):
    """Put back: class weights copied from a host list to the device in every step."""

    def training_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = torch.tensor([1.0] * logits.shape[-1], device=logits.device)
        return F.cross_entropy(
            logits.float(), targets, weight=weight, label_smoothing=self.options.loss.label_smoothing
        )


class BareStep(ImageClassifier):
    """Taken away: training metrics and logging altogether (the step is forward, loss, backward)."""

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return self.training_loss(self.classify(self.preprocess(images)), labels)

    def on_train_epoch_end(self) -> None:
        pass


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(Callback):
    """Seconds from the start of step ``warmup`` to the end of the last step, between synchronisations."""

    def __init__(self, warmup: int, last: int) -> None:
        self.warmup, self.last = warmup, last
        self.started, self.seconds = 0.0, 0.0

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            synchronize(pl_module.device)
            self.started = time.perf_counter()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if trainer.global_step == self.last:
            synchronize(pl_module.device)
            self.seconds = time.perf_counter() - self.started


def device_batches(args: argparse.Namespace, device: torch.device, count: int) -> DataLoader:
    """``count`` batches that repeat 4 distinct ones, made on ``device`` (a DataLoader of ready batches)."""
    generator = torch.Generator(device).manual_seed(0)
    distinct = [
        (
            torch.randint(0, 256, (args.batch_size, 3, 64, 64), dtype=torch.uint8, device=device, generator=generator),
            torch.randint(0, 10, (args.batch_size,), device=device, generator=generator),
        )
        for _ in range(4)
    ]
    return DataLoader([distinct[i % 4] for i in range(count)], batch_size=None)


VARIANTS: dict[str, dict[str, Any]] = {
    "package (as shipped)": {},
    "+ per-step training metrics, loss on the progress bar": {"module": PerStepMetrics},
    "+ Lightning's ThroughputMonitor (a sync every batch)": {"lightning_monitor": True},
    "+ class weights copied every step": {"module": WeightsCopiedEachStep},
    "- fused optimizer (foreach Adam)": {"optimizer": {"foreach": True}},
    "- metrics and logging (bare step)": {"module": BareStep},
    "+ torch.compile": {"compile": True},
    "+ bf16 weights (bf16-true)": {"precision": "bf16-true"},
}


def model_of(args: argparse.Namespace, variant: dict[str, Any]) -> ImageClassifier:
    torch.manual_seed(0)
    module = variant.get("module", ImageClassifier)
    optimizer = partial(torch.optim.Adam, lr=1e-4, **variant.get("optimizer", {}))
    return module(
        class_names=list(EUROSAT_CLASSES),
        network=NetworkOptions(
            pretrained=None, architecture=MODELS[args.model], torch_compile=variant.get("compile", False)
        ),
        input=InputOptions(size=args.image_size, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
        optimizer=optimizer,
    )


def run_variant(args: argparse.Namespace, name: str, workdir: Path) -> dict[str, float]:
    variant = VARIANTS[name]
    steps = args.warmup + args.steps
    timer = StepTimer(args.warmup, steps)
    monitor = ThroughputMonitor(batch_size_fn=images_in) if variant.get("lightning_monitor") else TrainingThroughput()
    trainer = Trainer(
        accelerator=args.accelerator,
        devices=1,
        precision=variant.get("precision", args.precision),
        max_steps=steps,
        limit_val_batches=0,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=True,  # as `eurosat fit` runs
        logger=CSVLogger(workdir, name="profile"),
        callbacks=[monitor, timer],
    )
    model = model_of(args, variant)
    device = trainer.strategy.root_device
    trainer.fit(model, train_dataloaders=device_batches(args, device, steps))
    ms = 1000 * timer.seconds / args.steps
    return {"ms_per_step": ms, "images_per_s": args.batch_size * args.steps / timer.seconds}


class Profiled(Callback):
    """torch.profiler from the start of step ``warmup`` to the end of the last step."""

    def __init__(self, warmup: int, last: int, on_gpu: bool, record_shapes: bool = False) -> None:
        self.warmup, self.last = warmup, last
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
        self.profiler = profile(activities=activities, record_shapes=record_shapes)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            self.profiler.__enter__()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if trainer.global_step == self.last:
            synchronize(pl_module.device)
            self.profiler.__exit__(None, None, None)


def profiled(args: argparse.Namespace) -> dict[str, Any]:
    """torch.profiler over ``--profile-steps`` steps of the shipped step: the top kernels by self time
    on the device (the CPU on a CPU) and, on a GPU, the fraction of the span with no kernel running."""
    steps = args.warmup + args.profile_steps
    on_gpu = torch.cuda.is_available() and args.accelerator in ("auto", "gpu", "cuda")
    profiler = Profiled(args.warmup, steps, on_gpu, record_shapes=args.by_shape)
    trainer = Trainer(
        accelerator=args.accelerator,
        devices=1,
        precision=args.precision,
        max_steps=steps,
        limit_val_batches=0,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        logger=False,
        callbacks=[profiler],
    )
    trainer.fit(model_of(args, {}), train_dataloaders=device_batches(args, trainer.strategy.root_device, steps))
    # by shape: which layer a kernel's time belongs to (e.g. a convolution's backward on 3x3 maps)
    events = profiler.profiler.key_averages(group_by_input_shape=args.by_shape)
    sort_by = "self_cuda_time_total" if on_gpu else "self_cpu_time_total"
    widths = {"max_name_column_width": 40, "max_shapes_column_width": 100} if args.by_shape else {}
    print(events.table(sort_by=sort_by, row_limit=args.top, **widths))
    idle = gpu_idle_fraction(profiler.profiler) if on_gpu else None
    print("GPU idle fraction of the profiled steps:", "n/a (no GPU)" if idle is None else f"{idle:.1%}")
    return {"gpu_idle_fraction": idle}


def gpu_idle_fraction(prof: profile) -> float:
    """1 - (time with at least one kernel running) / (first kernel's start to last kernel's end)."""
    spans = sorted(
        (event.time_range.start, event.time_range.end)
        for event in prof.events()
        if event.device_type == torch.autograd.DeviceType.CUDA
    )
    busy, reach = 0.0, float("-inf")
    for start, end in spans:
        if end > reach:
            busy += end - max(start, reach)
            reach = end
    return 1 - busy / (spans[-1][1] - spans[0][0]) if spans else float("nan")


def table(results: dict[str, dict[str, float]]) -> str:
    base = results["package (as shipped)"]["ms_per_step"]
    lines = ["| variant | ms/step | images/s | speed against the shipped step |", "| --- | --- | --- | --- |"]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row['ms_per_step']:.1f} | {row['images_per_s']:.0f} | {base / row['ms_per_step']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="bf16-mixed" if torch.cuda.is_available() else "32-true")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--warmup", type=int, default=5, help="steps before timing (compilation happens here)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--profile-steps", type=int, default=5, help="steps under torch.profiler (0: no profile)")
    parser.add_argument("--top", type=int, default=15, help="kernels listed by the profiler")
    parser.add_argument("--by-shape", action="store_true", help="list kernels by their input shapes (by layer)")
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.profile_steps < 0:
        parser.error(f"--profile-steps={args.profile_steps}: give 0 (no profile) or more steps")
    with tempfile.TemporaryDirectory() as workdir:
        names = dict.fromkeys(["package (as shipped)", *args.variants])  # the shipped step first, once
        results = {name: run_variant(args, name, Path(workdir)) for name in names}
    profile_result = profiled(args) if args.profile_steps else {"gpu_idle_fraction": None}
    print(table(results))
    out = {"settings": vars(args) | {"json": str(args.json)}, "variants": results, "profiled": args.profile_steps > 0}
    out |= profile_result
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
