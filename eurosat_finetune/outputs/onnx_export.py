"""An ONNX model that takes raw pixels: the images as stored go in, the class probabilities come out, and
everything training did in between (resize to the model's input size, scaling, normalisation) is in the
graph, so no other tool can feed it differently. What a user needs to call it is in its metadata.

The graph is exported with PyTorch's ``torch.onnx.export(dynamo=True)`` (which needs ``onnxscript``) at
opset 18, the first with an antialiased ``Resize``, as training resizes when it shrinks images.
"""

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eurosat_finetune import __version__
from eurosat_finetune.errors import ExportError, first_line
from eurosat_finetune.model.backbones import logits
from eurosat_finetune.outputs.exported_network import exported_network
from eurosat_finetune.pixels import shrinks, to_model_input

ONNX_NAME = "model.onnx"
OPSET = 18


class RawPixelsClassifier(nn.Module):
    """``model``'s network, fed as in training: ``(N, C, H, W)`` pixels as stored in, probabilities out;
    a float32 copy on the CPU with ``state_dict``'s weights (the current ones without it)."""

    def __init__(self, model: Any, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.net = exported_network(model, state_dict)  # CPU, float32: onnxruntime on a CPU runs no bf16 Conv
        self.size, self.mean, self.std = model.image_size, list(model.image_mean), list(model.image_std)
        self.interpolates = model.interpolates

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """The steps of ``ImageClassifier.forward``, then the softmax."""
        values = to_model_input(pixels, self.size, self.mean, self.std)
        return logits(self.net, values, self.interpolates).float().softmax(dim=-1)


def require_onnx() -> None:
    """A one-line error, before any training, if the ``[onnx]`` extra is not installed."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401  (torch's ONNX exporter builds the graph with it)
    except ImportError as err:
        raise ExportError(
            f"--export.onnx needs onnx and onnxscript ({first_line(err)}); `pip install 'eurosat-finetune[onnx]'`"
        ) from None


def onnx_metadata(model: Any, channels: int, input_size: tuple[int, int], dtype: str) -> dict[str, str]:
    """What a caller needs, as the file's ``metadata_props`` (JSON values)."""
    bands = (model.input_bands or {}).get("names")
    return {
        "class_names": json.dumps(list(model.class_names)),
        "input": json.dumps({"name": "pixels", "dtype": dtype, "shape": ["N", channels, *input_size]}),
        "bands": json.dumps(bands if bands else "RGB"),
        "preprocessing": json.dumps(
            {
                "resize": [model.image_size, model.image_size],
                "interpolation": "bilinear, antialiased" if shrinks(input_size, model.image_size) else "bilinear",
                "scale": 1 / 255 if dtype == "uint8" else 1,
                "mean": list(model.image_mean),
                "std": list(model.image_std),
            }
        ),
        "output": json.dumps({"name": "probabilities", "shape": ["N", len(model.class_names)]}),
        "eurosat_finetune_version": json.dumps(__version__),
    }


def export_onnx(
    model: Any, path: Path, input_size: tuple[int, int], state_dict: dict[str, torch.Tensor] | None = None
) -> Path:
    """Write ``model`` (with ``state_dict``'s weights if given) as an ONNX graph from raw pixels of
    ``input_size`` (any batch size) to class probabilities; a family that does not export is one line."""
    import onnx

    channels = len(model.image_mean)
    dtype = torch.uint16 if model.input_bands else torch.uint8  # the images as stored
    graph = RawPixelsClassifier(model, state_dict)
    example = torch.zeros(2, channels, *input_size, dtype=dtype)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        # the exporter narrates each stage on stdout and warns of its own deprecations: keep the run's output readable
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                (example,),
                tmp,
                dynamo=True,
                input_names=["pixels"],
                output_names=["probabilities"],
                opset_version=OPSET,
                dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}},
                verbose=False,
            )
        exported = onnx.load(tmp)
        onnx.helper.set_model_props(exported, onnx_metadata(model, channels, input_size, str(dtype).split(".")[-1]))
        onnx.save(exported, tmp)
        tmp.replace(path)
    except Exception as err:  # each family and exporter stage raises its own type
        tmp.unlink(missing_ok=True)
        raise ExportError(
            f"ONNX export of the {model.net.config.model_type} model failed ({first_line(err)}); the checkpoints "
            f"and the Hugging Face export in {path.parent} are kept"
        ) from None
    return path
