"""The classification metrics of each stage, and training's, gathered without stalling the device.

A metric update in every training step reads values back to the host: the macro averages count a
confusion matrix with ``torch.bincount``, which on CUDA reads the input's range back first, and input
validation runs ``torch.unique``. Each read waits for the step's kernels to finish, so the host stops
queueing the next step's. Training therefore keeps each step's predicted and true classes on the
device (:class:`EpochPredictions`) and updates the same metrics with all of them once, at the epoch's
end: the same values, one read-back per epoch instead of several per step.
"""

import torch
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
