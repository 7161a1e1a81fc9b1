"""Seeds of each training batch's randomness, from (global seed, rank, epoch, batch index, stream) alone, so
a resumed run repeats an uninterrupted one; the data's flips and the model's MixUp/CutMix draw from them."""

import os

import numpy as np


def global_seed() -> int:
    """The run's seed (``seed_everything``, which Lightning exports as PL_GLOBAL_SEED), else 0."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


FLIPS, MIXING = 0, 1
"""The streams of :func:`batch_seed`: a batch's flips and its MixUp/CutMix draws are independent."""


def batch_seed(rank: int, epoch: int, batch_idx: int, stream: int) -> int:
    """A seed of its own for each training batch: from (global seed, rank, epoch, batch index within
    the epoch), which a resumed run reaches again, and which differ between the micro-batches of an
    accumulated step (the global step does not)."""
    # SeedSequence mixes the entropy well and is the same in every Python (tuple hashes are not)
    entropy = [global_seed(), rank, epoch, batch_idx, stream]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])
