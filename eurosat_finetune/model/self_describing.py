"""Checkpoints that describe their network, so they restore offline: what :class:`ImageClassifier`
stores in and reads from a Lightning checkpoint."""

import warnings
from pathlib import Path
from typing import IO, Any

import torch
from lightning.pytorch import LightningModule

from eurosat_finetune.errors import CheckpointError, ClassMismatchError
from eurosat_finetune.model import backbones
from eurosat_finetune.renamed_options import RenamedOptionWarning, renamed_section

# The hyperparameters that shape the network, by their place in the model's groups; the checkpoint's rebuild it
# (see resolved_hparams).
NETWORK_OPTIONS = (
    "network.pretrained",
    "network.architecture",
    "network.config_overrides",
    "weights",
    "input.size",
    "input_bands",
)


class SelfDescribingCheckpoint(LightningModule):
    """Restoring must not need the hub or the pretrained directory: each checkpoint's hyperparameters
    describe the network itself (architecture, labels, input size, normalisation); where it started
    from is provenance only. Needs ``net``, ``class_names``, ``image_size``, ``image_mean``,
    ``image_std``, ``input_bands`` and ``pretrained_from``."""

    def resolved_hparams(self) -> dict[str, Any]:
        """The hyperparameters that rebuild this network with no hub and no directory: the network group
        with the architecture (labels included, overrides applied) and nothing pretrained, no weights (the
        checkpoint holds them), the input size and normalisation."""
        architecture = backbones.architecture_of(self.net)
        architecture["id2label"] = {str(i): name for i, name in enumerate(self.class_names)}
        network = {**self.hparams["network"], "pretrained": None, "architecture": architecture}
        return {
            "network": {**network, "config_overrides": None},
            "weights": None,
            "input": {"size": self.image_size, "mean": self.image_mean, "std": self.image_std},
            "input_bands": self.input_bands,
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Restoring must not need the hub or the pretrained directory, so the checkpoint's
        # hyperparameters describe the network itself; where it started from is provenance only.
        checkpoint["hyper_parameters"].update(self.resolved_hparams())
        if self.pretrained_from is not None:
            checkpoint["pretrained_from"] = self.pretrained_from

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint trained on other classes than this module's; read checkpoints written
        before commit d5a0566, which kept the network in ``self.vit``."""
        state = checkpoint.get("state_dict", {})
        if state and not any(key.startswith("net.") for key in state):
            checkpoint["state_dict"] = {
                f"net.{k.removeprefix('vit.')}" if k.startswith("vit.") else k: v for k, v in state.items()
            }
        self.check_classes(checkpoint.get("hyper_parameters", {}).get("class_names"))
        self.check_network(checkpoint)
        self.pretrained_from = checkpoint.get("pretrained_from")
        # the network's own bands and statistics, which the data's (linked) may lack: predicting new files,
        # the data has no statistics. The model's record only: the data takes its bands from the command
        self.input_bands = checkpoint.get("hyper_parameters", {}).get("input_bands") or self.input_bands

    def check_classes(self, saved: list[str] | None) -> None:
        """Refuse weights trained on other classes than this module's (the CLI asks before any work)."""
        if saved is not None and list(saved) != self.class_names:
            raise ClassMismatchError(
                f"the checkpoint was trained on classes {list(saved)} but the data has classes "
                f"{self.class_names}; evaluate it on data with the checkpoint's classes"
            )

    def check_network(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, in one line naming the options to drop, weights of another shape than the network the
        model options built (rather than a page of ``size mismatch`` lines from ``load_state_dict``)."""
        own = self.state_dict()
        saved = checkpoint.get("state_dict", {})
        differing = [k for k, v in saved.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
        if not differing:
            return
        first = differing[0]
        with warnings.catch_warnings():  # said when the command read the checkpoint's options
            warnings.simplefilter("ignore", RenamedOptionWarning)
            hparams = renamed_section("model", checkpoint.get("hyper_parameters", {}))
        options = [f"model.{k}" for k in NETWORK_OPTIONS if option(hparams, k) != option(self.hparams, k)]
        raise CheckpointError(
            f"the checkpoint's network does not fit the one the model options build ({len(differing)} tensors "
            f"differ, e.g. {first}: {list(saved[first].shape)} in the checkpoint, {list(own[first].shape)} here); "
            f"{', '.join(options) or 'the model options'} {'differs' if len(options) == 1 else 'differ'} from the "
            f"checkpoint's: drop {'it' if len(options) == 1 else 'them'} (and any config's model group) to take the "
            "checkpoint's"
        )


def option(hparams: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted place (``network.architecture``) in hyperparameters; None where it is missing."""
    value: Any = hparams
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def saved_hparams(checkpoint_path: str | Path | IO) -> dict[str, Any]:
    """The model hyperparameters a checkpoint file holds (read without its tensors); none for a file object or
    a remote path, which Lightning reads itself."""
    if not isinstance(checkpoint_path, str | Path) or not Path(checkpoint_path).is_file():
        return {}
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True, mmap=True)
    return dict(checkpoint.get("hyper_parameters", {}))
