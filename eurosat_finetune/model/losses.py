"""What the training loss sees: class weights (given, or balanced from the training split) and
MixUp/CutMix batches, drawn per batch. Label smoothing is a plain argument of the loss (see
``ImageClassifier``)."""

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningModule
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torchvision.transforms import v2

from eurosat_finetune.errors import ConfigError
from eurosat_finetune.tools.batch_seeds import MIXING, batch_seed

log = logging.getLogger(__name__)

ClassWeights = list[float] | Literal["balanced"] | None

Inputs = tuple[torch.Tensor, torch.Tensor]
"""A training batch's model input and targets (labels, or class probabilities after MixUp/CutMix)."""


def class_weights_of(class_weights: ClassWeights, train_labels: Sequence[int] | None, num_classes: int) -> list[float]:
    """The loss weight of each class: as given, or with ``"balanced"`` inversely proportional to the
    class's count in the training split (scikit-learn's ``compute_class_weight``)."""
    if class_weights == "balanced":
        if train_labels is None:
            raise ConfigError(
                "model.loss.class_weights=balanced needs the training split's labels; fit with a datamodule"
            )
        labels = np.asarray(train_labels)
        present = np.unique(labels)
        if len(present) != num_classes:
            raise ConfigError(
                f"model.loss.class_weights=balanced: the training split holds {len(present)} of the {num_classes} "
                "classes; give the weights as a list instead"
            )
        weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=labels)
        log.info("class weights from the training split's counts: %s", ", ".join(f"{w:.3f}" for w in weights))
        return [float(w) for w in weights]
    assert class_weights is not None
    if len(class_weights) != num_classes or min(class_weights) < 0:
        raise ConfigError(
            f"model.loss.class_weights has {len(class_weights)} values; give {num_classes} non-negative ones "
            "(one per class, in label order) or 'balanced'"
        )
    return [float(w) for w in class_weights]


def batch_mixer(mixup_alpha: float, cutmix_alpha: float, num_classes: int) -> nn.Module | None:
    """torchvision's MixUp and/or CutMix (one of the two, drawn per batch, when both are set); None if
    neither. They turn integer labels into mixed one-hot targets."""
    if mixup_alpha < 0 or cutmix_alpha < 0:
        raise ConfigError("model.loss.mixup_alpha and model.loss.cutmix_alpha must be >= 0 (0 turns each off)")
    mixers = []
    if mixup_alpha > 0:
        mixers.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
    if cutmix_alpha > 0:
        mixers.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)


def mixing_seed(module: LightningModule, batch_idx: int) -> int:
    """The seed of the MixUp/CutMix draws of the training batch ``batch_idx`` of the module's epoch
    (see :func:`eurosat_finetune.tools.batch_seeds.batch_seed`)."""
    return batch_seed(module.global_rank, module.current_epoch, batch_idx, MIXING)


def mixed(mixer: nn.Module | None, pixel_values: torch.Tensor, labels: torch.Tensor, seed: int) -> Inputs:
    """The batch mixed by ``mixer`` (as it is without one), with draws from ``seed`` alone.

    torchvision's MixUp, CutMix and RandomChoice draw lambda, the box and the choice from torch's global
    CPU generator, which checkpoints do not keep; drawn from a fork of it seeded for the batch, they are
    the same when a resumed run reaches the batch again, and the global generator is left as it was."""
    if mixer is None:
        return pixel_values, labels
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # not torch.manual_seed, which would reseed the GPUs too
        return mixer(pixel_values, labels)
