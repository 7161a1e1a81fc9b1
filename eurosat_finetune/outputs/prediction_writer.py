"""Predict writers that each take the batches addressed to them (see :mod:`eurosat_finetune.data.predict_batches`)."""

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from eurosat_finetune.outputs.run_folder import RunFolderCallback


class AddressedPredictionWriter(RunFolderCallback, BasePredictionWriter):
    """Streams each predict batch of its own ``kind`` to :meth:`write_batch` as it comes; batches of
    another kind are another writer's."""

    kind: str  # the predict batch kind this writer takes

    def __init__(self) -> None:
        super().__init__(write_interval="batch")

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if prediction["kind"] == self.kind:
            self.write_batch(prediction, pl_module)

    def write_batch(self, prediction: dict[str, Any], pl_module: LightningModule) -> None:
        """Write ``prediction``: ``probs`` and the metadata of its kind of batch."""
        raise NotImplementedError
