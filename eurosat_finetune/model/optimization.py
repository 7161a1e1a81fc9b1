"""The optimizer and its schedule: parameter groups with layer-wise learning-rate decay, then the
configured scheduler, stepped per epoch or per optimizer step, after an optional linear warmup."""

import inspect
import math
import re
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable, instantiate_class
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import nn
from torch.optim import Adam, AdamW, Optimizer
from torch.optim.lr_scheduler import CyclicLR, LambdaLR, OneCycleLR, ReduceLROnPlateau, SequentialLR

from eurosat_finetune.errors import ConfigError
from eurosat_finetune.model import backbones
from eurosat_finetune.model.options import OptimizationOptions

WARMUP_NEEDS_STEPS = (
    "model.optimization.warmup_steps hands over to model.scheduler after that many optimizer steps, so the "
    "scheduler must step per step: set model.optimization.scheduler_interval=step (and size it in steps), with a "
    "scheduler other than ReduceLROnPlateau"
)


def factory(spec: Callable | dict[str, Any]) -> Callable:
    """An optimizer's or scheduler's factory: as given, or from its class_path spec (the signature's default,
    and what a checkpoint restored without Lightning's instantiator holds)."""
    return partial(instantiate_class, init=spec) if isinstance(spec, dict) else spec


def learning_rate_of(optimizer_factory: Callable) -> float | None:
    """The ``lr`` an optimizer factory was given, if any (a number)."""
    given = optimizer_factory.keywords if isinstance(optimizer_factory, partial) else {}
    lr = given.get("init", {}).get("init_args", {}).get("lr") if "init" in given else given.get("lr")
    return lr if isinstance(lr, int | float) else None


def refuse_negative_learning_rate(lr: object) -> None:
    """A negative ``model.optimizer.lr`` in one line (the command checks its config with this before anything is
    built; the module, built from Python, when it is)."""
    if isinstance(lr, int | float) and lr < 0:
        raise ConfigError(f"model.optimizer.lr={lr} is negative: give a learning rate of 0 or more (e.g. 1e-4)")


def check_options(
    optimizer_factory: Callable, scheduler_factory: Callable | None, options: OptimizationOptions
) -> None:
    """Refuse in one line, before the network is built: a negative learning rate (the optimizer's arguments are
    Lightning's OptimizerCallable, which the parser takes as they are), or a warmup handing over to a scheduler
    that steps per epoch."""
    refuse_negative_learning_rate(learning_rate_of(optimizer_factory))
    if options.warmup_steps > 0 and scheduler_factory is not None and options.scheduler_interval != "step":
        raise ConfigError(WARMUP_NEEDS_STEPS)


# a numbered block of a transformer (or stage of a hierarchical) backbone: ViT/DeiT/BEiT/DINOv2
# "encoder.layer.3.", Swin "encoder.layers.1.", ConvNeXt "encoder.stages.2.", timm "blocks.5."
NUMBERED_LAYER = re.compile(r"(?:^|\.)(?:layer|layers|blocks|stages)\.(\d+)\.")
EMBEDDING_NAMES = ("embed", "cls_token", "mask_token", "register_tokens", "dist_token")


def layer_of(name: str, num_layers: int) -> int:
    """A backbone parameter's depth: 0 for the embeddings, i + 1 for numbered layer i, ``num_layers + 1``
    for what follows the last layer (the final norm)."""
    match = NUMBERED_LAYER.search(name)
    if match:
        return int(match.group(1)) + 1
    if any(part in name for part in EMBEDDING_NAMES):
        return 0
    return num_layers + 1


def parameter_groups(
    net: nn.Module, layer_decay: float | None, decay_norms_and_biases: bool = True
) -> list[dict[str, Any]]:
    """The trainable parameters as optimizer groups, each with an ``lr_scale``: 1 everywhere, or with
    layer-wise decay ``layer_decay ** (num_layers + 1 - depth)``, so the head and the last layer learn
    at the full rate and each layer below at ``layer_decay`` times the one above (BEiT, timm). Without
    ``decay_norms_and_biases``, the 1-D parameters (normalisation scales and shifts, biases) go in
    groups of their own with ``weight_decay`` 0 (nanoGPT's rule, and timm's for the 1-D ones)."""
    trainable = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
    if layer_decay is None:
        return exempt_from_decay([{"params": [p for _, p in trainable], "lr_scale": 1.0}], decay_norms_and_biases)
    if not 0 < layer_decay <= 1:
        raise ConfigError(f"model.optimization.layer_decay={layer_decay} must be in (0, 1]; null turns it off")
    backbone = backbones.backbone_of(net)
    in_backbone = {id(p) for p in backbone.parameters()}
    prefix = next((f"{n}." for n, m in net.named_children() if m is backbone), "")
    layers = {int(m.group(1)) for name, _ in trainable if (m := NUMBERED_LAYER.search(name.removeprefix(prefix)))}
    if not layers:
        raise ConfigError(
            f"model.optimization.layer_decay: {type(net).__name__} has no numbered layers (encoder.layer.N, "
            "blocks.N, stages.N) to decay over; set model.optimization.layer_decay=null"
        )
    num_layers = max(layers) + 1
    groups: dict[int, list[nn.Parameter]] = {}
    for name, p in trainable:
        # the head (outside the backbone) learns at the full rate; timm heads sit inside it, after the norm
        depth = layer_of(name.removeprefix(prefix), num_layers) if id(p) in in_backbone else num_layers + 1
        groups.setdefault(depth, []).append(p)
    scale = {depth: layer_decay ** (num_layers + 1 - depth) for depth in groups}
    scaled = [{"params": params, "lr_scale": scale[depth]} for depth, params in sorted(groups.items())]
    return exempt_from_decay(scaled, decay_norms_and_biases)


def exempt_from_decay(groups: list[dict[str, Any]], decay_norms_and_biases: bool) -> list[dict[str, Any]]:
    """``groups`` as they are, or each split in two, both at the group's ``lr_scale``: its matrices and
    kernels (weight decay as configured), then its 1-D parameters with ``weight_decay`` 0 (pulling a
    norm's scale or a bias towards 0 rarely helps: they set a layer's range, not its capacity)."""
    if decay_norms_and_biases:
        return groups
    split: list[dict[str, Any]] = []
    for group in groups:
        decayed = [p for p in group["params"] if p.ndim > 1]
        exempt = [p for p in group["params"] if p.ndim <= 1]
        split += [{**group, "params": decayed}] if decayed else []
        split += [{**group, "params": exempt, "weight_decay": 0.0}] if exempt else []
    return split


def scale_learning_rates(optimizer: torch.optim.Optimizer) -> None:
    """Multiply each group's learning rate by its ``lr_scale`` (before any scheduler records it)."""
    for group in optimizer.param_groups:
        group["lr"] *= group.get("lr_scale", 1.0)


def configure(
    optimizer_factory: OptimizerCallable,
    groups: list[dict[str, Any]],
    scheduler_factory: LRSchedulerCallable | None,
    interval: Literal["epoch", "step"],
    frequency: int,
    warmup_steps: int,
    run_length: float,
    fuse: bool = True,
) -> OptimizerLRScheduler:
    """What ``configure_optimizers`` returns: the optimizer over ``groups`` (learning rates scaled),
    with the scheduler after ``warmup_steps`` of linear warmup, stepped every ``frequency`` ``interval``s.
    A ``total_steps`` left null (OneCycleLR's) becomes the scheduler steps of the run, whose length in
    ``interval`` units is ``run_length``. With ``fuse``, Adam and AdamW run fused where they can
    (:func:`fused_where_supported`)."""
    optimizer = optimizer_factory([dict(group) for group in groups])  # torch fills defaults into the dicts given
    if fuse:
        optimizer = fused_where_supported(optimizer, groups)
    scale_learning_rates(optimizer)  # before a scheduler records each group's initial_lr
    scheduler = None
    if scheduler_factory is not None:
        sizing = sized_to_run(scheduler_factory, run_length - warmup_steps, frequency)
        scheduler = scheduler_factory(optimizer, **sizing)
        scale_cycle_rates(scheduler)
    if warmup_steps > 0:
        if isinstance(scheduler, ReduceLROnPlateau):
            raise ConfigError(WARMUP_NEEDS_STEPS)
        ramp = LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps))
        scheduler = ramp if scheduler is None else SequentialLR(optimizer, [ramp, scheduler], milestones=[warmup_steps])
        interval = "step"
    if scheduler is None:
        return optimizer
    config = {"scheduler": scheduler, "interval": interval, "frequency": frequency}
    return {"optimizer": optimizer, "lr_scheduler": {**config, "monitor": "val_loss"}}


def configure_module(module: LightningModule) -> OptimizerLRScheduler:
    """:func:`configure` for an :class:`ImageClassifier`, from its options (``hparams``), network (``net``)
    and factories (``optimizer``, ``scheduler``)."""
    options = module.options.optimization
    return configure(
        module.optimizer,
        groups_of(module),
        module.scheduler,
        interval=options.scheduler_interval,
        frequency=options.scheduler_frequency,
        warmup_steps=options.warmup_steps,
        run_length=run_length(module, options.scheduler_interval, options.warmup_steps),
        fuse=may_fuse(module),
    )


def groups_of(module: LightningModule) -> list[dict[str, Any]]:
    options = module.options.optimization
    return parameter_groups(module.net, options.layer_decay, options.decay_norms_and_biases)


def check_resumable(module: LightningModule, checkpoint: dict[str, Any]) -> None:
    """Refuse in one line, before Lightning loads it, a fit's resume from optimizer state saved for other
    parameter groups than this run's options make (torch would stop with a traceback)."""
    try:
        fitting = module.trainer.state.fn == TrainerFn.FITTING  # test and predict load no optimizer state
    except RuntimeError:  # not attached to a Trainer
        return
    states = checkpoint.get("optimizer_states")
    if not fitting or not states:
        return
    saved = [len(group["params"]) for group in states[0]["param_groups"]]
    own = [len(group["params"]) for group in groups_of(module)]
    if saved != own:
        raise ConfigError(
            f"the checkpoint's optimizer state has parameter groups of {saved} tensors, this run's options make "
            f"{own}: resume with the checkpoint's model.optimization.layer_decay and decay_norms_and_biases "
            f"({module.options.optimization.layer_decay} and {module.options.optimization.decay_norms_and_biases} "
            "here)"
        )


def sized_to_run(scheduler_factory: LRSchedulerCallable, length: float, frequency: int) -> dict[str, int]:
    """``{"total_steps": n}`` when the scheduler takes a ``total_steps`` that was left null (and no
    ``epochs``), n being the times it steps in a run of ``length`` steps or epochs; else nothing."""
    given = scheduler_factory.keywords if isinstance(scheduler_factory, partial) else {}
    if "total_steps" not in given or given["total_steps"] is not None or given.get("epochs") is not None:
        return {}
    if not math.isfinite(length) or length < 1:
        raise ConfigError(
            "model.scheduler: total_steps is null, so it is sized to the run, which has no fixed length; set "
            "trainer.max_epochs or trainer.max_steps, or the scheduler's total_steps"
        )
    return {"total_steps": math.ceil(length / frequency)}


def run_length(module: LightningModule, interval: Literal["epoch", "step"], warmup_steps: int) -> float:
    """The fit's length in scheduler intervals: optimizer steps (Lightning's estimate) or epochs;
    unknown (infinite) outside a Trainer."""
    try:
        trainer = module.trainer
    except RuntimeError:  # not attached to a Trainer
        return math.inf
    if interval == "step" or warmup_steps > 0:
        return trainer.estimated_stepping_batches
    return trainer.max_epochs if trainer.max_epochs not in (None, -1) else math.inf


def scale_cycle_rates(scheduler: Any) -> None:
    """OneCycleLR and CyclicLR set absolute rates from their own arguments, overriding the groups'
    scaled ones: scale theirs by each group's ``lr_scale`` too (layer-wise decay survives them)."""
    scales = [group.get("lr_scale", 1.0) for group in scheduler.optimizer.param_groups]
    if isinstance(scheduler, OneCycleLR):
        for group, scale in zip(scheduler.optimizer.param_groups, scales, strict=True):
            for key in ("initial_lr", "max_lr", "min_lr", "lr"):
                group[key] *= scale
    elif isinstance(scheduler, CyclicLR):
        scheduler.base_lrs = [lr * s for lr, s in zip(scheduler.base_lrs, scales, strict=True)]
        scheduler.max_lrs = [lr * s for lr, s in zip(scheduler.max_lrs, scales, strict=True)]
        for group, lr in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, strict=True):
            group["lr"] = lr


FUSED_DEVICES = ("cuda", "cpu")
"""Where Adam's and AdamW's fused kernels run (torch >= 2.4)."""


def fused_where_supported(optimizer: Optimizer, groups: list[dict[str, Any]]) -> Optimizer:
    """``optimizer`` rebuilt over ``groups`` with ``fused=True`` (one kernel updates every parameter,
    where the default loops over them in a few kernels per parameter group) when it is an Adam or AdamW
    whose config left ``fused`` and ``foreach`` unset, over floating-point parameters on a device with
    fused kernels; else ``optimizer`` as it is. The update is the same, to rounding."""
    chosen = optimizer.defaults.get("fused") is not None or optimizer.defaults.get("foreach") is not None
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    supported = all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in parameters)
    if not isinstance(optimizer, Adam | AdamW) or chosen or not supported or optimizer.defaults.get("differentiable"):
        return optimizer
    arguments = inspect.signature(type(optimizer)).parameters
    settings = {key: value for key, value in optimizer.defaults.items() if key in arguments}
    return type(optimizer)([dict(group) for group in groups], **{**settings, "fused": True})


def may_fuse(module: LightningModule) -> bool:
    """Whether a fused optimizer suits the module's run (yes outside a Trainer): Lightning cannot clip
    gradients for one under a gradient scaler (16-mixed), since it unscales them itself in its step."""
    try:
        trainer: Trainer = module.trainer
    except RuntimeError:  # not attached to a Trainer
        return True
    scaled = getattr(trainer.precision_plugin, "scaler", None) is not None
    return not (scaled and trainer.gradient_clip_val)
