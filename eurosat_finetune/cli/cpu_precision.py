"""A run in bf16 on a CPU that has no bf16 instructions: PyTorch then computes bf16 in software, many times
slower than float32 (configs/cpu.yaml's step: 25 against 256 images/s on a 2-core AMD EPYC with AVX2 alone,
where a CPU with AVX-512 BF16 and AMX ran it 1.4 times faster in bf16). Said in one warning before any work."""

import warnings
from typing import Any

import torch


def native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX). PyTorch says so only through these
    private functions; tests/test_cpu_precision.py fails if they move."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def runs_on_cpu(accelerator: Any) -> bool:
    """Whether ``trainer.accelerator`` puts the run on the CPU (``auto`` does where no GPU is found)."""
    name = accelerator if isinstance(accelerator, str) else type(accelerator).__name__
    return name in ("cpu", "CPUAccelerator") or (name == "auto" and not torch.cuda.is_available())


def warn_software_bf16(accelerator: Any, precision: Any) -> None:
    """Warn of a bf16 run on a CPU without bf16 instructions, naming the option that avoids it."""
    if str(precision).startswith("bf16") and runs_on_cpu(accelerator) and not native_bf16():
        warnings.warn(
            f"trainer.precision={precision} on a CPU without bf16 instructions (AVX-512 BF16 or AMX): PyTorch computes "
            "bf16 in software here, about 10 times slower than float32 for configs/cpu.yaml; add "
            "--trainer.precision 32-true",
            SoftwareBf16Warning,
            stacklevel=2,
        )


class SoftwareBf16Warning(UserWarning):
    """bf16 asked for where the CPU computes it in software."""
