"""The DataLoaders of the datamodule: one way to build them, and the sampler that evaluates each image once."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, Sampler


@dataclass(frozen=True)
class LoaderOptions:
    """How the images are batched and loaded (``data.loader``).

    Args:
        batch_size: Images per batch (per device). Training leaves out the incomplete last batch of an
            epoch once the epoch has 10 full ones (every step then has one shape).
        num_workers: DataLoader worker processes (they decode images when there is no decode cache).
    """

    batch_size: PositiveInt = 32
    num_workers: NonNegativeInt = 4


def loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    sampler: Sampler | None = None,
    collate_fn: Callable | None = None,
    drop_last: bool = False,
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
    )


def ready_batches_loader(dataset: IterableDataset, num_workers: int) -> DataLoader:
    """A loader of a dataset that yields whole batches itself (no batching, no collating here)."""
    return DataLoader(dataset, batch_size=None, num_workers=num_workers, pin_memory=torch.cuda.is_available())


FULL_BATCHES_BEFORE_DROPPING = 10


def drops_last_batch(images: int, batch_size: int, processes: int) -> bool:
    """Whether training leaves out each epoch's incomplete last batch: once an epoch has at least
    ``FULL_BATCHES_BEFORE_DROPPING`` full batches per process. Every step then has the same shape
    (``torch.compile`` keeps one graph; BatchNorm never meets a batch of one) and an epoch leaves out
    under a tenth of its images, different ones each epoch; small training sets (the learning curve's
    320 images seen once) keep every image."""
    return images // processes >= FULL_BATCHES_BEFORE_DROPPING * batch_size


def each_image_once(dataset: Dataset, world_size: int, rank: int) -> Sampler | None:
    """Under DDP, every n-th image for this process, so each is evaluated exactly once: for validation
    and test, Lightning's DistributedSampler would pad the set with duplicates up to a multiple of the
    process count, and they would count twice in the metrics. (Processes then differ by up to one
    batch, which evaluation allows: nothing is synced per step.)"""
    if world_size == 1:
        return None
    return UnpaddedSampler(dataset, world_size, rank)


class UnpaddedSampler(DistributedSampler):
    """Items ``rank``, ``rank + world_size``, ...: each on exactly one process, none added to even the
    counts out. A DistributedSampler, so that Lightning keeps it instead of putting its own in its place."""

    def __init__(self, dataset: Dataset, world_size: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=False)
        self.num_samples = len(self.indices())  # what len() reports; the parent's counts the padding

    def indices(self) -> range:
        return range(self.rank, len(self.dataset), self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())
