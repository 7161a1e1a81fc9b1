"""Randomness that depends only on (seed, epoch) for the order and on (seed, rank, epoch, batch) for each
batch's augmentation, so a resumed run repeats an uninterrupted one."""

import torch
from lightning.pytorch import Trainer
from torch.utils.data import Dataset, RandomSampler

from eurosat_finetune.tools.batch_seeds import FLIPS, batch_seed


class EpochSeededSampler(RandomSampler):
    """A random order drawn from (seed, epoch) alone, as DistributedSampler's is. (Lightning calls
    ``set_epoch`` each epoch, and swaps in its DistributedSampler under DDP.)"""

    def __init__(self, data_source: Dataset, seed: int) -> None:
        super().__init__(data_source, generator=torch.Generator())
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed + epoch)


def flips_generator(trainer: Trainer, device: torch.device) -> torch.Generator:
    """A generator on ``device`` for the flips of the training batch being moved there."""
    # the epoch's batches made ready before this one: its index, which training_step gets as batch_idx
    batch_idx = trainer.fit_loop.epoch_loop.batch_progress.current.ready
    seed = batch_seed(trainer.global_rank, trainer.current_epoch, batch_idx, FLIPS)
    return torch.Generator(device).manual_seed(seed)
