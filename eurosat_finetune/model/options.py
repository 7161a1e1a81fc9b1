"""The model's options in named groups (``model.network.*``, ``model.input.*``, ``model.optimization.*``,
``model.loss.*``), as the ``eurosat`` command shows them. Their types refuse a bad value when the command
line is parsed, in one line naming the option, before anything is built.

A group arrives as its dataclass (the command, a Python call) or as the plain dict a checkpoint holds
(:func:`group`); checkpoints store the plain form (:func:`plain`), which ``torch.load(weights_only=True)``
reads."""

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from eurosat_finetune.errors import ConfigError
from eurosat_finetune.model.band_channels import NewChannels
from eurosat_finetune.model.pretrained_weights import WeightsSpec
from eurosat_finetune.tools.option_types import BelowOne, UpToOne
from eurosat_finetune.tools.plain_values import plain

DEFAULT_MODEL = "google/vit-base-patch16-224"


@dataclass(frozen=True)
class NetworkOptions:
    """The network fine-tuned: loaded pretrained, or built new from an architecture.

    Args:
        pretrained: Hub id (e.g. ``microsoft/swin-tiny-patch4-window7-224``, ``timm/convnext_tiny.fb_in1k``) or
            local ``save_pretrained`` directory of the pretrained image classifier whose backbone is fine-tuned (its
            head is replaced). Null with ``architecture`` builds a new network; null with ``model.weights`` starts
            from those.
        architecture: The whole config of a network built new, randomly initialised (``pretrained`` null), with its
            ``model_type`` (``vit`` if none given), e.g. ``{model_type: resnet, hidden_sizes: [32, 64]}``.
            Checkpoints hold their network's here, labels included.
        config_overrides: Fields that change the starting network's config: the pretrained one's (e.g.
            ``{drop_path_rate: 0.1}``), the architecture's, or for ``model.weights`` transformers'
            ``TimmWrapperConfig`` (e.g. ``{model_args: {drop_path_rate: 0.1}}``).
        new_channels: How a pretrained network's first layer starts on data bands it was not trained on (it keeps
            the filters of those it was, by name): ``zeros`` or the ``mean`` of its filters.
        freeze_backbone: Train only the new classification head (a linear probe); the backbone stays as loaded,
            runs without gradients and costs a third of the compute.
        torch_compile: Compile the network with ``torch.compile`` when training starts (faster steps on GPUs after
            a compile of a minute or so; checkpoints are unchanged).
    """

    pretrained: str | None = DEFAULT_MODEL
    architecture: dict[str, Any] | None = None
    config_overrides: dict[str, Any] | None = None
    new_channels: NewChannels = "zeros"
    freeze_backbone: bool = False
    torch_compile: bool = False

    def __post_init__(self) -> None:
        if self.pretrained is not None and self.architecture is not None:
            raise ConfigError(
                f"model.network.architecture builds a new network but model.network.pretrained={self.pretrained!r} "
                "loads one: set model.network.pretrained null to build the architecture (or give the fields to "
                "change as model.network.config_overrides)"
            )

    def starting_config(self) -> dict[str, Any] | None:
        """The config fields the network starts from: the architecture with the overrides on top (a new
        network), or the overrides alone (of a pretrained one's config)."""
        if self.architecture is None and self.config_overrides is None:
            return None
        return {**(self.architecture or {}), **(self.config_overrides or {})}


@dataclass(frozen=True)
class InputOptions:
    """The images as the network takes them, resized and normalised on the device.

    Args:
        size: Side length images are resized to; null uses the model's native size (its image processor's).
            ViT-style models interpolate their position embeddings, convolutional ones and Swin take any size; a
            size the model cannot take is refused.
        mean: Per-channel normalisation mean; null takes it from the data's bands (multispectral), the weights
            (``model.weights``) or the model's image processor.
        std: Per-channel normalisation std; null takes it as ``mean`` does.
    """

    size: PositiveInt | None = None
    mean: list[float] | None = None
    std: list[PositiveFloat] | None = None


@dataclass(frozen=True)
class OptimizationOptions:
    """How ``model.optimizer`` and ``model.scheduler`` are applied.

    Args:
        scheduler_interval: When the scheduler steps: after every ``epoch``, or after every optimizer ``step``
            (size it in steps then, e.g. ``CosineAnnealingLR`` with ``T_max`` = total steps).
        scheduler_frequency: Step the scheduler every this many epochs or optimizer steps.
        warmup_steps: Raise the learning rate linearly over the first this many optimizer steps (from
            lr / warmup_steps to lr), then hand over to ``model.scheduler``, which must then step per ``step``.
        layer_decay: Layer-wise learning-rate decay: each backbone layer learns at this factor times the rate of
            the layer above it (the head and the last layer at the full rate; e.g. 0.75); null turns it off.
            Needs a backbone of numbered layers (transformers, ConvNeXt stages).
        decay_norms_and_biases: Apply the optimizer's weight decay to the normalisation layers' weights and all
            biases (the 1-D parameters) too; false exempts them (weight decay 0).
    """

    scheduler_interval: Literal["epoch", "step"] = "epoch"
    scheduler_frequency: PositiveInt = 1
    warmup_steps: NonNegativeInt = 0
    layer_decay: UpToOne | None = None  # 1 is no decay
    decay_norms_and_biases: bool = True


@dataclass(frozen=True)
class LossOptions:
    """The training loss and the batches it sees; validation and test losses stay plain cross-entropy.

    Args:
        label_smoothing: Training targets put this much probability mass evenly on all classes, in [0, 1).
        class_weights: Weight of each class in the training loss (label order), or ``balanced``: inversely
            proportional to the class's count in the training split.
        mixup_alpha: MixUp of training batches on the device (torchvision v2), with this Beta parameter (e.g.
            0.2); 0 turns it off.
        cutmix_alpha: CutMix of training batches on the device (torchvision v2), with this Beta parameter (e.g.
            1.0); 0 turns it off. With both set, each batch gets one of the two.
    """

    label_smoothing: BelowOne = 0.0
    class_weights: list[NonNegativeFloat] | Literal["balanced"] | None = None
    mixup_alpha: NonNegativeFloat = 0.0
    cutmix_alpha: NonNegativeFloat = 0.0


Group = TypeVar("Group")


@dataclass(frozen=True)
class ModelOptions:
    """The option groups an ``ImageClassifier`` was given, typed; ``weights`` as given (a name, a spec, or a
    checkpoint's plain dict), resolved when the network is built (:func:`.pretrained_weights.weights_spec`)."""

    network: NetworkOptions
    weights: str | WeightsSpec | dict[str, Any] | None
    input: InputOptions
    optimization: OptimizationOptions
    loss: LossOptions

    @classmethod
    def given(
        cls,
        network: NetworkOptions | dict[str, Any] | None,
        weights: str | WeightsSpec | dict[str, Any] | None,
        input: InputOptions | dict[str, Any] | None,
        optimization: OptimizationOptions | dict[str, Any] | None,
        loss: LossOptions | dict[str, Any] | None,
    ) -> "ModelOptions":
        return cls(
            network=group(NetworkOptions, network, "network"),
            weights=weights,
            input=group(InputOptions, input, "input"),
            optimization=group(OptimizationOptions, optimization, "optimization"),
            loss=group(LossOptions, loss, "loss"),
        )

    @property
    def starts_from(self) -> str | None:
        """Where the network's weights come from: ``model.weights`` (its name or location) or the pretrained
        classifier; None for a new network."""
        if isinstance(self.weights, WeightsSpec):
            return self.weights.location
        if isinstance(self.weights, dict):
            return self.weights.get("location")
        return self.weights or self.network.pretrained


def group(kind: type[Group], value: Group | dict[str, Any] | None, name: str) -> Group:
    """``value`` as the group ``kind``: as it is, from the plain dict a checkpoint holds, or the defaults
    for None; a key the group does not have is one line naming it."""
    if value is None:
        return kind()
    values = plain(value)  # the parser's restricted numbers as plain ones, which checkpoints load with weights_only
    fields = {field.name for field in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"model.{name} has no {', '.join(unknown)}; its options are {', '.join(sorted(fields))}")
    return kind(**values)
