"""The classification metrics of each stage, and training's, gathered without stalling the device.

A metric update in every training step reads values back to the host: the macro averages count a
confusion matrix with ``torch.bincount``, which on CUDA reads the input's range back first, and input
validation runs ``torch.unique``. Each read waits for the step's kernels to finish, so the host stops
queueing the next step's. Training therefore keeps each step's predicted and true classes on the
device (:class:`EpochPredictions`) and updates the same metrics with all of them once, at the epoch's
end: the same values, one read-back per epoch instead of several per step.
"""

from dataclasses import dataclass

import torch
from lightning.pytorch import LightningModule
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score


def stage_metrics(num_classes: int) -> MetricCollection:
    """Overall accuracy, the mean of the per-class accuracies and macro F1; cloned once per stage
    (``clone(prefix="val_")``)."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "macro_acc": MulticlassAccuracy(num_classes, average="macro"),
            "macro_f1": MulticlassF1Score(num_classes, average="macro"),
        }
    )


class EpochPredictions:
    """The predicted and true classes of an epoch's training batches, kept on their device until
    :meth:`pop` hands them over for one metric update (a few bytes an image)."""

    def __init__(self) -> None:
        self.predicted: list[torch.Tensor] = []
        self.true: list[torch.Tensor] = []

    def add(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.predicted.append(logits.argmax(dim=-1))  # integer tensors carry no autograd history
        self.true.append(labels)

    def pop(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """All predicted and true classes since the last pop, or None if there were none."""
        if not self.true:
            return None
        predicted, true = torch.cat(self.predicted), torch.cat(self.true)
        self.predicted, self.true = [], []
        return predicted, true


@dataclass(frozen=True)
class TestPredictions:
    """The test's predicted and true class of each image evaluated, by the image's index in the test set."""

    indices: torch.Tensor
    predicted: torch.Tensor
    true: torch.Tensor

    def confusion_matrix(self, num_classes: int) -> torch.Tensor:
        """Rows true, columns predicted, each image counted once (they are gathered from every process)."""
        cells = self.true * num_classes + self.predicted
        return torch.bincount(cells, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def in_test_set_order(module: LightningModule, predicted: torch.Tensor, true: torch.Tensor) -> TestPredictions:
    """Each process's predictions gathered (``all_gather``, every process calls this) and put back in the
    test set's order: under DDP process ``r`` of ``W`` evaluated images ``r, r + W, r + 2W, ...``
    (``UnpaddedSampler``), so row ``k`` of the gathered ``(W, k)`` table holds images ``kW`` to ``kW + W - 1``.
    Processes hold up to one batch fewer: their rows are padded with -1, which is then left out."""
    if module.trainer.world_size == 1:
        return TestPredictions(torch.arange(len(true)), predicted.cpu(), true.cpu())
    longest = int(module.all_gather(torch.tensor(len(true), device=true.device)).max())
    padded = torch.full((2, longest), -1, dtype=torch.long, device=true.device)
    padded[0, : len(predicted)], padded[1, : len(true)] = predicted, true
    table = module.all_gather(padded)  # (W, 2, longest)
    predicted_all, true_all = (table[:, row].transpose(0, 1).reshape(-1).cpu() for row in (0, 1))
    kept = true_all >= 0
    return TestPredictions(torch.nonzero(kept).flatten(), predicted_all[kept], true_all[kept])
