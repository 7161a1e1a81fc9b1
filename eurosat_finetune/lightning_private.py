"""The Lightning internals this package relies on, in one place: for each, nothing public does the
job. ``tests/test_architecture.py`` fails when Lightning changes one of them."""

from lightning.pytorch.callbacks import ThroughputMonitor
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

__all__ = ["UnrepeatedDistributedSampler", "set_available_flops"]
# UnrepeatedDistributedSampler: the sampler Lightning gives predict under DDP, each item on one process
# and none padded in; evaluation needs the same (a padded DistributedSampler counts images twice).


def set_available_flops(monitor: ThroughputMonitor, peak_flops: float) -> None:
    """Make ``monitor`` divide by ``peak_flops`` for MFU: ThroughputMonitor looks the device's peak up in
    its own table and takes no argument for chips the table lacks. Call after its ``setup``."""
    for throughput in monitor._throughputs.values():
        throughput.available_flops = peak_flops
