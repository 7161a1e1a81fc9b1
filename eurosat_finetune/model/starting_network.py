"""The network a run starts from, and the input it expects: a pretrained Hugging Face classifier
(``model.network.pretrained``), a timm network with Sentinel-2 weights (``model.weights``), or a new
one built from ``model.network.architecture`` (as every checkpoint rebuilds its own, offline)."""

from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedModel

from eurosat_finetune.data.bands import RGB_BANDS
from eurosat_finetune.errors import ConfigError
from eurosat_finetune.model import backbones, pretrained_weights
from eurosat_finetune.model.band_channels import NewChannels, for_bands
from eurosat_finetune.model.options import InputOptions
from eurosat_finetune.model.pretrained_weights import WeightsSpec


@dataclass
class StartingNetwork:
    """A network with a new head, and the input size and per-channel normalisation it expects."""

    net: PreTrainedModel
    native_size: int
    mean: list[float]
    std: list[float]

    def input(self, given: InputOptions) -> InputOptions:
        """The input size and normalisation the options give (None: the network's own), checked against
        the network now, in one line, rather than by a traceback after the data is read."""
        size = given.size or self.native_size
        mean = list(given.mean or self.mean)
        std = list(given.std or self.std)
        backbones.check_normalisation(mean, std, getattr(self.net.config, "num_channels", 3))
        if size != self.native_size:
            backbones.check_input_size(self.net, size, self.native_size)
        return InputOptions(size=size, mean=mean, std=std)


def starting_network(
    pretrained: str | None,
    config: dict[str, Any] | None,
    weights: WeightsSpec | None,
    input_bands: dict[str, list] | None,
    new_channels: NewChannels,
    class_names: list[str],
) -> StartingNetwork:
    """The network for ``class_names`` and the data's bands (``input_bands``; None for RGB images), from the
    ``pretrained`` classifier, the ``weights``, or new; ``config`` holds the fields its config starts from
    (a new network's whole architecture, or overrides).
    Multispectral data is normalised with its bands' own statistics, unless the weights expect others."""
    bands = input_bands["names"] if input_bands else None
    statistics = (list(input_bands["mean"]), list(input_bands["std"])) if input_bands else None
    if weights is not None:
        if pretrained is not None:
            raise ConfigError(
                f"model.weights and model.network.pretrained={pretrained!r} both name the network to start "
                "from; give one (--model.network.pretrained null to start from model.weights)"
            )
        data_bands = bands or list(RGB_BANDS)  # RGB images are B04, B03, B02
        net = pretrained_weights.network(weights, config or {}, data_bands, new_channels, class_names)
        size = weights.input_size or int(net.timm_model.pretrained_cfg["input_size"][-1])
        return StartingNetwork(net, size, *pretrained_weights.normalisation(weights, data_bands, statistics))
    if pretrained is None:
        channels = {"num_channels": len(bands)} if bands else {}
        net = backbones.build_from_config({**(config or {}), **channels}, class_names)
        processor = None
    else:
        net = backbones.load_pretrained(pretrained, config or {}, class_names)
        if bands:
            net = for_bands(net, bands, new_channels)
        processor = backbones.load_image_processor(pretrained)
    size, mean, std = backbones.native_input(processor, net.config)
    if statistics:  # in stored units (see pixels.to_model_input)
        mean, std = statistics
    return StartingNetwork(net, size, mean, std)
