"""The Lightning internals this package relies on, in one place: for each, nothing public does the
job. ``tests/test_architecture.py`` fails when Lightning changes one of them."""

from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

__all__ = ["UnrepeatedDistributedSampler"]
# UnrepeatedDistributedSampler: the sampler Lightning gives predict under DDP, each item on one process
# and none padded in; evaluation needs the same (a padded DistributedSampler counts images twice).
