"""Randomness that depends only on (seed, epoch or step), so a resumed run repeats an uninterrupted one."""

import os

import torch
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


def step_generator(rank: int, step: int, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded from (global seed, rank, step), for per-step augmentation."""
    return torch.Generator(device).manual_seed(hash((global_seed(), rank, step)) % 2**63)
