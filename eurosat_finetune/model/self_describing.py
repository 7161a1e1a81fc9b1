"""Checkpoints that describe their network, so they restore offline: what :class:`ImageClassifier`
stores in and reads from a Lightning checkpoint."""

from typing import Any

from lightning.pytorch import LightningModule

from eurosat_finetune.errors import CheckpointError, ClassMismatchError
from eurosat_finetune.model import backbones

# The hyperparameters that shape the network; the checkpoint's rebuild it (see resolved_hparams).
NETWORK_OPTIONS = ("model_name_or_path", "model_config", "vit_config", "weights", "image_size", "input_bands")
# Where the weights came from: provenance once trained (the checkpoint holds the weights themselves).
WEIGHTS_OPTIONS = ("weights", "weights_model", "weights_bands", "weights_mean", "weights_std")


class SelfDescribingCheckpoint(LightningModule):
    """Restoring must not need the hub or the pretrained directory: each checkpoint's hyperparameters
    describe the network itself (architecture, labels, input size, normalisation); where it started
    from is provenance only. Needs ``net``, ``class_names``, ``image_size``, ``image_mean``,
    ``image_std``, ``input_bands`` and ``pretrained_from``."""

    def resolved_hparams(self) -> dict[str, Any]:
        """The hyperparameters that rebuild this network with no hub and no directory: the
        architecture as a ``model_config`` (labels included), input size and normalisation."""
        architecture = backbones.architecture_of(self.net)
        architecture["id2label"] = {str(i): name for i, name in enumerate(self.class_names)}
        return {
            "model_name_or_path": None,
            "model_config": architecture,
            "vit_config": None,
            "image_size": self.image_size,
            "image_mean": self.image_mean,
            "image_std": self.image_std,
            "input_bands": self.input_bands,
            **dict.fromkeys(WEIGHTS_OPTIONS),
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
        hparams = checkpoint.get("hyper_parameters", {})
        options = [f"model.{k}" for k in NETWORK_OPTIONS if hparams.get(k) != self.hparams.get(k)]
        raise CheckpointError(
            f"the checkpoint's network does not fit the one the model options build ({len(differing)} tensors "
            f"differ, e.g. {first}: {list(saved[first].shape)} in the checkpoint, {list(own[first].shape)} here); "
            f"{', '.join(options) or 'the model options'} {'differs' if len(options) == 1 else 'differ'} from the "
            f"checkpoint's: drop {'it' if len(options) == 1 else 'them'} (and any config's model group) to take the "
            "checkpoint's"
        )
