"""bf16 asked for on a CPU that computes it in software: one warning naming the option, before any work."""

import json
import warnings
from pathlib import Path

import pytest
import torch
from conftest import FAST, TINY_VIT, run_cli

from eurosat_finetune.cli import cpu_precision
from eurosat_finetune.cli.cpu_precision import SoftwareBf16Warning, warn_software_bf16


def test_pytorch_still_says_whether_the_cpu_has_bf16_instructions() -> None:
    """The private functions native_bf16 relies on: if PyTorch moves them, this fails (not every run)."""
    assert isinstance(torch.cpu._is_avx512_bf16_supported(), bool)
    assert isinstance(torch.cpu._is_amx_tile_supported(), bool)
    assert isinstance(cpu_precision.native_bf16(), bool)


@pytest.mark.parametrize(
    ("accelerator", "precision", "native", "warned"),
    [
        ("cpu", "bf16-mixed", False, True),
        ("cpu", "bf16-true", False, True),
        ("cpu", "bf16-mixed", True, False),  # a CPU with AVX-512 BF16 or AMX
        ("cpu", "32-true", False, False),
        ("cpu", None, False, False),
        ("gpu", "bf16-mixed", False, False),
    ],
)
def test_a_bf16_run_on_a_cpu_without_bf16_instructions_is_warned_of(
    accelerator: str, precision: str | None, native: bool, warned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpu_precision, "native_bf16", lambda: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_software_bf16(accelerator, precision)
    said = [str(w.message) for w in caught if issubclass(w.category, SoftwareBf16Warning)]
    assert said == (
        [
            f"trainer.precision={precision} on a CPU without bf16 instructions (AVX-512 BF16 or AMX): PyTorch "
            "computes bf16 in software here, about 10 times slower than float32 for configs/cpu.yaml; add "
            "--trainer.precision 32-true"
        ]
        if warned
        else []
    )


def test_the_command_warns_before_any_work(sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_precision, "native_bf16", lambda: False)
    model = [
        "--model.network.pretrained=null",
        f"--model.network.architecture={json.dumps({'model_type': 'vit', **TINY_VIT})}",
    ]
    args = ["fit", *FAST, *model, f"--data.root={sample_root}", f"--trainer.default_root_dir={tmp_path}"]
    args += ["--trainer.max_epochs=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"]
    with pytest.warns(SoftwareBf16Warning, match=r"trainer\.precision=bf16-mixed on a CPU without bf16"):
        run_cli([*args, "--trainer.precision=bf16-mixed", "--export.after_fit=false"])


def test_the_package_s_warnings_print_as_one_line() -> None:
    """Its own warnings (by class, or raised from its code) as ``eurosat: warning: ...``; a library's as Python
    writes them, with the file and line they came from."""
    import lightning

    from eurosat_finetune.cli import command
    from eurosat_finetune.outputs.predictions_csv import LeftOutImagesWarning

    line = "warnings.warn(message)"
    assert command.one_line_warning("bf16 in software", SoftwareBf16Warning, "/elsewhere.py", 3, line) == (
        "eurosat: warning: bf16 in software\n"
    )
    from_code = str(Path(command.__file__).parents[1] / "outputs" / "predictions_csv.py")
    assert command.one_line_warning("skipped 1 unreadable image", UserWarning, from_code, 9, line) == (
        "eurosat: warning: skipped 1 unreadable image\n"
    )
    assert (
        command.one_line_warning("left out", LeftOutImagesWarning, from_code, 9, line) == "eurosat: warning: left out\n"
    )
    library = str(Path(lightning.__file__).parent / "fabric" / "x.py")
    assert command.one_line_warning("a library's", UserWarning, library, 5, line).startswith(f"{library}:5: ")
