"""Export a fine-tuned classifier as a Hugging Face model directory that other tools load."""

import copy
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from transformers import PreTrainedModel
from transformers.utils import logging as hf_logging

from eurosat_finetune.model.backbones import backbone_of
from eurosat_finetune.outputs.exported_network import exported_network
from eurosat_finetune.outputs.model_card import model_card
from eurosat_finetune.outputs.onnx_export import ONNX_NAME, export_onnx, require_onnx
from eurosat_finetune.outputs.run_folder import RunFolderCallback, RunOutput
from eurosat_finetune.outputs.run_record import best_checkpoint
from eurosat_finetune.pixels import image_processor

if TYPE_CHECKING:
    from eurosat_finetune.model import ImageClassifier

log = logging.getLogger(__name__)


def at_input_size(net: PreTrainedModel, size: int) -> PreTrainedModel:
    """``net`` with ``config.image_size`` equal to ``size``, the size it was trained at.

    A model fine-tuned at another size than its native one (e.g. a ViT at 64 px from a 224 px
    checkpoint) uses interpolated position embeddings; they are baked in here, so tools that never
    pass ``interpolate_pos_encoding`` (such as ``pipeline``) get the same outputs. Families whose
    weights do not depend on the input size (Swin, ConvNeXt) only get the new ``image_size``.
    """
    if getattr(net.config, "image_size", size) == size:
        return net
    config = copy.deepcopy(net.config)
    config.image_size = size
    state = net.state_dict()
    embeddings = getattr(backbone_of(net), "embeddings", None)
    table = getattr(embeddings, "position_embeddings", None)
    if isinstance(table, torch.nn.Parameter) and hasattr(embeddings, "interpolate_pos_encoding"):
        patches = (size // config.patch_size) ** 2
        extra_tokens = table.shape[1] - (net.config.image_size // config.patch_size) ** 2  # [CLS], distillation
        name = next(key for key, value in net.named_parameters() if value is table)
        with torch.no_grad():
            state[name] = embeddings.interpolate_pos_encoding(
                torch.zeros(1, patches + extra_tokens, table.shape[-1]), size, size
            ).clone()
    resized = type(net)(config)
    try:
        resized.load_state_dict(state)
    except RuntimeError:  # weights that depend on the size otherwise (BEiT's relative position bias)
        log.warning(
            "The export keeps the %s model's native image_size %s; pass interpolate_pos_encoding=True "
            "when running it at %d px",
            net.config.model_type,
            net.config.image_size,
            size,
        )
        return net
    return resized


def export_output(directory: Path) -> RunOutput:
    return RunOutput("Hugging Face export", directory, "--export.dirpath")


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """transformers' progress bars off within, as they were after (its public switches)."""
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def export_huggingface(
    model: "ImageClassifier", directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None
) -> Path:
    """Write ``model``'s network (with ``id2label`` holding the class names) and an image processor
    that resizes and normalises as training did;
    with ``state_dict`` (a checkpoint's), those weights instead of the model's current ones; in float32,
    from the CPU, whatever the run's device and precision.

    The directory must not exist yet or be empty: an earlier export is never overwritten.
    """
    directory = Path(directory)
    export_output(directory).refuse_existing()
    with no_progress_bars():  # "Writing model shards: 1/1" is not the user's business
        at_input_size(exported_network(model, state_dict), model.image_size).save_pretrained(directory)
    rgb = model.input_bands is None  # multispectral images are normalised in stored units, not rescaled
    image_processor(model.image_size, model.image_mean, model.image_std, rescale=rgb).save_pretrained(directory)
    return directory


class HuggingFaceExport(RunFolderCallback):
    """Save the model as a Hugging Face directory (``save_pretrained`` model + image processor).

    ``transformers.pipeline("image-classification", model=<dir>)`` then classifies images with the
    real class names. After ``fit`` the best checkpoint's weights are exported (the final weights if
    no checkpoint was kept); after ``test`` the tested weights.

    Args:
        dirpath: Where to write; null uses ``huggingface/`` in the run folder.
        after_fit: Export when fitting ends.
        after_test: Export when testing ends (e.g. ``eurosat test --ckpt_path best.ckpt --export.after_test true``).
        onnx: Also write ``model.onnx`` in the export: the images as stored in (uint8, or uint16 for
            multispectral bands; any batch size), the preprocessing of training inside, class
            probabilities out (see docs/deploy.md). Needs ``pip install 'eurosat-finetune[onnx]'``.
    """

    def __init__(
        self, dirpath: str | Path | None = None, after_fit: bool = True, after_test: bool = False, onnx: bool = False
    ) -> None:
        self.dirpath = dirpath
        self.after_fit = after_fit
        self.after_test = after_test
        self.onnx = onnx
        if onnx:
            require_onnx()  # before any training

    def directory(self, run_folder: Path) -> Path:
        return Path(self.dirpath) if self.dirpath is not None else run_folder / "huggingface"

    def outputs(self, run_folder: Path, subcommand: str) -> list[RunOutput]:
        exports = (subcommand == "fit" and self.after_fit) or (subcommand == "test" and self.after_test)
        return [export_output(self.directory(run_folder))] if exports else []

    def _export(self, trainer: Trainer, pl_module: LightningModule, state_dict: dict | None, tested: bool) -> None:
        path = self.directory(self.run_folder)
        export_huggingface(pl_module, path, state_dict)
        (path / "README.md").write_text(model_card(pl_module, trainer, tested))  # the hub's model card
        print(f"Hugging Face model written to {path}")
        if self.onnx:
            readable = getattr(trainer.datamodule, "readable", None)  # the size the images are stored at
            size = tuple(readable.size) if readable is not None else (pl_module.image_size,) * 2
            export_onnx(pl_module, path / ONNX_NAME, size, state_dict)
            print(f"ONNX model written to {path / ONNX_NAME}")

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.after_fit:
            return
        best = best_checkpoint(trainer)  # best.ckpt's callback by what it is, not by Lightning's callback order
        path = best.best_model_path if best is not None else None
        state_dict = torch.load(path, map_location="cpu", weights_only=True)["state_dict"] if path else None
        self._export(trainer, pl_module, state_dict, tested=False)

    @rank_zero_only
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.after_test:
            self._export(trainer, pl_module, None, tested=True)
