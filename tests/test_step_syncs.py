"""A training step queues its work on the device and returns: nothing in it reads a value back to
the host (which would make the host wait for the device), and a compiled network keeps its graphs
through an epoch. Checked on CPU, where every call that would synchronise with a GPU is counted."""

import itertools
import json
import traceback
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import FAST, REPO, TINY_VIT
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.overrides import TorchFunctionMode

from eurosat_finetune.cli import build_cli
from eurosat_finetune.outputs import throughput

# Tensor methods and torch functions that wait for a GPU: they return host values, or outputs whose
# size depends on the data. (``.to(device)`` is left out: on CPU it cannot be told from the batch
# transfer, which on a GPU is an asynchronous copy to it.)
SYNCHRONISING = {
    "item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__",
    "nonzero", "argwhere", "unique", "unique_consecutive", "bincount", "masked_select", "repeat_interleave",
}  # fmt: skip


class SynchronisingCalls(TorchFunctionMode):
    """Records each synchronising call with where it came from."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in SYNCHRONISING:
            caller = next(
                (f for f in reversed(traceback.extract_stack()[:-1]) if "torch/overrides" not in f.filename), None
            )
            self.calls.append(f"{name} at {caller.filename}:{caller.lineno}" if caller else name)
        return func(*args, **kwargs)


class CountPerStep(Callback):
    """Synchronising calls from one training batch's start to the next's (the step, the optimizer,
    every callback, and fetching the next batch)."""

    def __init__(self) -> None:
        self.mode = SynchronisingCalls()
        self.boundaries: list[int] = []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.mode.__enter__()

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self.boundaries.append(len(self.mode.calls))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.mode.__exit__(None, None, None)

    def per_step(self) -> list[list[str]]:
        edges = self.boundaries
        return [self.mode.calls[start:end] for start, end in itertools.pairwise(edges)]


class GraphsPerBatch(Callback):
    """The number of graphs dynamo has compiled, after each training batch and each epoch's end
    (which comes after its validation and sample grid): ``(epoch, batch index or -1, graphs)``."""

    def __init__(self) -> None:
        self.graphs: list[tuple[int, int, int]] = []

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self.graphs.append((trainer.current_epoch, args[-1], dynamo_counters()["stats"]["unique_graphs"]))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.graphs.append((trainer.current_epoch, -1, dynamo_counters()["stats"]["unique_graphs"]))


def dynamo_counters() -> Any:
    from torch._dynamo.utils import counters  # private: how many graphs dynamo has compiled

    return counters


def test_the_counter_sees_what_synchronises() -> None:
    """The counter catches the read-backs a careless step would make (so zero below means zero)."""
    with SynchronisingCalls() as mode:
        loss = torch.ones(3).sum()
        loss.item()
        if loss > 0:
            torch.bincount(torch.tensor([1, 2]))
    assert [call.split(" ")[0] for call in mode.calls] == ["item", "__bool__", "bincount"]


@pytest.mark.slow  # an end-to-end run: the full suite
def test_the_cpu_recipe_training_step_reads_nothing_back(sample_root: Path, tmp_path: Path, monkeypatch) -> None:
    """The CPU recipe's step (bf16, fused AdamW, one-cycle per step, dihedral augmentation, label
    smoothing), with balanced class weights and every default callback, between logging steps."""
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(REPO / "configs/fit.yaml"), "--config", str(REPO / "configs/cpu.yaml"), *FAST]
    args += [
        f"--data.root={sample_root}",
        "--data.download.enabled=false",
        "--data.loader.batch_size=8",
        "--model.input.size=32",
    ]
    args += ["--model.loss.class_weights=balanced", "--trainer.max_epochs=1", "--trainer.log_every_n_steps=1000"]
    args += ["--throughput.window_size=5", "--trainer.precision=bf16-mixed"]
    cli = build_cli([*args, "--trainer.callbacks+=test_step_syncs.CountPerStep"])
    counter = next(c for c in cli.trainer.callbacks if isinstance(c, CountPerStep))
    steps = counter.per_step()
    assert len(steps) == 16  # 140 training images in batches of 8: 17 batches, the last one (of 4) left out
    # the first step creates what later ones reuse (the class weights on the device, the optimizer's state)
    syncing = {i: calls for i, calls in enumerate(steps) if calls and i > 0}
    assert not syncing, f"training steps that read values back: {syncing}"
    assert cli.trainer.callback_metrics["train_acc"] >= 0  # the training metrics are still computed, per epoch


def test_throughput_reads_the_clock_once_per_window(sample_root: Path, tmp_path: Path, monkeypatch) -> None:
    reads = []
    clock = throughput.synchronized_clock
    monkeypatch.setattr(throughput, "synchronized_clock", lambda trainer: reads.append(1) or clock(trainer))
    args = ["fit", *FAST, "--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]
    args += [f"--data.root={sample_root}", "--data.loader.batch_size=8", "--trainer.max_epochs=1"]
    args += ["--throughput.window_size=4", "--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp_path}"]
    build_cli(args)
    # 17 training batches: the epoch's start and the end of each of 4 windows of 4 (which starts the
    # next); validation's start and end (which restarts training's window); nothing in the sanity check
    assert len(reads) == 1 + 4 + 2


@pytest.mark.slow
def test_a_compiled_network_keeps_its_graphs_through_an_epoch(sample_root: Path, tmp_path: Path) -> None:
    """Training batches all have one shape (the incomplete last one is left out), so the training
    graph compiles once; validation and the sample grid add theirs in the first epoch only."""
    torch._dynamo.reset()
    dynamo_counters().clear()
    args = ["fit", *FAST, "--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]
    args += [f"--data.root={sample_root}", "--data.loader.batch_size=8", "--trainer.max_epochs=2"]
    args += [
        "--model.network.torch_compile=true",
        "--trainer.logger=CSVLogger",
        f"--trainer.logger.save_dir={tmp_path}",
    ]
    cli = build_cli([*args, "--trainer.callbacks+=test_step_syncs.GraphsPerBatch"])
    seen = next(c for c in cli.trainer.callbacks if isinstance(c, GraphsPerBatch))
    first_epoch_training = {graphs for epoch, batch, graphs in seen.graphs if epoch == 0 and batch >= 0}
    second_epoch = {graphs for epoch, _, graphs in seen.graphs if epoch == 1}
    assert len(first_epoch_training) == 1, f"graphs compiled after the first training step: {seen.graphs}"
    after_first_epoch = next(graphs for epoch, batch, graphs in seen.graphs if epoch == 0 and batch == -1)
    assert second_epoch == {after_first_epoch}, f"graphs compiled in the second epoch: {seen.graphs}"
