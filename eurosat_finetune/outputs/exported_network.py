"""The network an export holds: the chosen weights, on the CPU, in float32, never compiled, whatever
device, precision (``bf16-true`` keeps weights in bf16) or ``torch.compile`` the run left the model in."""

import copy
from typing import Any

import torch
from transformers import PreTrainedModel


def exported_network(model: Any, state_dict: dict[str, torch.Tensor] | None = None) -> PreTrainedModel:
    """A copy of ``model.net`` with ``state_dict``'s weights (a checkpoint's, keys ``net.*``), or the
    current ones without it: on the CPU, float32, in eval mode and uncompiled. ``model`` is left as it is."""
    # a copy is never compiled (Module.__getstate__ leaves the compiled call out), so it runs its own
    # weights: tests/test_exports.py::test_exports_of_a_compiled_network_carry_the_checkpoint_s_weights
    net = copy.deepcopy(model.net).to("cpu", torch.float32)  # float32 casts floating weights only
    if state_dict is not None:
        weights = {key.removeprefix("net."): value for key, value in state_dict.items() if key.startswith("net.")}
        net.load_state_dict(weights)  # copied into the float32 CPU tensors, whatever the checkpoint's dtype
    return net.eval()
