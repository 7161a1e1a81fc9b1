"""Randomness that depends only on (seed, epoch) for the order and on (seed, rank, epoch, batch) for each
batch's augmentation, so a resumed run repeats an uninterrupted one."""

import os

import numpy as np
import torch
from lightning.pytorch import Trainer
from torch.utils.data import Dataset, RandomSampler


def global_seed() -> int:
    """The run's seed (``seed_everything``, which Lightning exports as PL_GLOBAL_SEED), else 0."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


class EpochSeededSampler(RandomSampler):
    """A random order drawn from (seed, epoch) alone, as DistributedSampler's is. (Lightning calls
    ``set_epoch`` each epoch, and swaps in its DistributedSampler under DDP.)"""

    def __init__(self, data_source: Dataset, seed: int) -> None:
        super().__init__(data_source, generator=torch.Generator())
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed + epoch)


FLIPS, MIXING = 0, 1
"""The streams of :func:`batch_seed`: a batch's flips and its MixUp/CutMix draws are independent."""


def batch_seed(rank: int, epoch: int, batch_idx: int, stream: int) -> int:
    """A seed of its own for each training batch: from (global seed, rank, epoch, batch index within
    the epoch), which a resumed run reaches again, and which differ between the micro-batches of an
    accumulated step (the global step does not)."""
    # SeedSequence mixes the entropy well and is the same in every Python (tuple hashes are not)
    entropy = [global_seed(), rank, epoch, batch_idx, stream]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def flips_generator(trainer: Trainer, device: torch.device) -> torch.Generator:
    """A generator on ``device`` for the flips of the training batch being moved there."""
    # the epoch's batches made ready before this one: its index, which training_step gets as batch_idx
    batch_idx = trainer.fit_loop.epoch_loop.batch_progress.current.ready
    seed = batch_seed(trainer.global_rank, trainer.current_epoch, batch_idx, FLIPS)
    return torch.Generator(device).manual_seed(seed)
