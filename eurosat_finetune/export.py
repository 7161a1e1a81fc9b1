"""Export a fine-tuned classifier as a Hugging Face model directory that other tools load."""

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from transformers import ViTForImageClassification

from eurosat_finetune.errors import OutputError
from eurosat_finetune.preprocessing import image_processor
from eurosat_finetune.runs import RunFolderCallback

if TYPE_CHECKING:
    from eurosat_finetune.model import ViTClassifier


def vit_at_input_size(vit: ViTForImageClassification, size: int) -> ViTForImageClassification:
    """``vit`` with ``config.image_size`` equal to ``size``, the size it was trained at.

    A ViT fine-tuned at another size than its native one (e.g. 64 px from a 224 px checkpoint) uses
    interpolated position embeddings; they are baked in here, so tools that never pass
    ``interpolate_pos_encoding`` (such as ``pipeline``) get the same outputs.
    """
    if size == vit.config.image_size:
        return vit
    config = copy.deepcopy(vit.config)
    config.image_size = size
    state = vit.state_dict()
    tokens = (size // config.patch_size) ** 2 + 1
    with torch.no_grad():
        state["vit.embeddings.position_embeddings"] = vit.vit.embeddings.interpolate_pos_encoding(
            torch.zeros(1, tokens, config.hidden_size), size, size
        ).clone()
    resized = ViTForImageClassification(config)
    resized.load_state_dict(state)
    return resized


def check_empty(directory: Path) -> None:
    if directory.exists() and any(directory.iterdir()):
        raise OutputError(f"{directory} already holds files; choose another --export.dirpath or move it")


def export_huggingface(
    model: "ViTClassifier", directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None
) -> Path:
    """Write ``model``'s ViT (with ``id2label`` holding the class names) and its image processor;
    with ``state_dict`` (a checkpoint's), those weights instead of the model's current ones.

    The directory must not exist yet or be empty: an earlier export is never overwritten.
    """
    directory = Path(directory)
    check_empty(directory)
    vit = model.vit
    if state_dict is not None:
        vit = copy.deepcopy(vit)
        vit.load_state_dict({k.removeprefix("vit."): v for k, v in state_dict.items() if k.startswith("vit.")})
    vit_at_input_size(vit, model.image_size).save_pretrained(directory)
    image_processor(model.image_size, model.image_mean, model.image_std).save_pretrained(directory)
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
    """

    def __init__(self, dirpath: str | Path | None = None, after_fit: bool = True, after_test: bool = False) -> None:
        self.dirpath = dirpath
        self.after_fit = after_fit
        self.after_test = after_test

    def directory(self, run_folder: Path) -> Path:
        return Path(self.dirpath) if self.dirpath is not None else run_folder / "huggingface"

    def check_outputs(self, run_folder: Path, subcommand: str) -> None:
        if (subcommand == "fit" and self.after_fit) or (subcommand == "test" and self.after_test):
            check_empty(self.directory(run_folder))

    def _export(self, pl_module: LightningModule, state_dict: dict | None = None) -> None:
        path = self.directory(self.run_folder)
        export_huggingface(pl_module, path, state_dict)
        print(f"Hugging Face model written to {path}")

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.after_fit:
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        state_dict = torch.load(best, map_location="cpu", weights_only=True)["state_dict"] if best else None
        self._export(pl_module, state_dict)

    @rank_zero_only
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.after_test:
            self._export(pl_module)
