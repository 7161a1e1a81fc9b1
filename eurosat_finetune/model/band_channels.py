"""A network for the bands of the data: its input channels are the bands, and each pretrained filter
goes to the channel of the band it was trained on, matched by name (a pretrained RGB network's to B04,
B03 and B02; a Sentinel-2 network's, trained in ESA order, to wherever the data stores that band).

Hugging Face image classifiers take their channel count from ``config.num_channels`` (timm models
through transformers' wrapper from ``model_args.in_chans``). The first layer's weights, the only ones
whose shape depends on it, are rebuilt: the filter of each band the network was trained on goes to
that band's channel (bands the data lacks are dropped with their filters), and every other channel
starts as zeros (``new_channels: zeros``; the network then computes at first exactly what the
pretrained network computed on the bands it knows) or as the mean of the pretrained filters
(``mean``). Tiling the RGB filters over every band lost accuracy in 16 of 17 cases of a public
benchmark, so it is not offered.
"""

import copy
from collections.abc import Sequence
from typing import Any, Literal

import torch
from transformers import PreTrainedModel

from eurosat_finetune.data.bands import RGB_BANDS
from eurosat_finetune.errors import ConfigError

NewChannels = Literal["zeros", "mean"]


def with_channels(config: Any, channels: int) -> Any:
    """A copy of a model config whose network takes ``channels`` input channels."""
    config = copy.deepcopy(config)
    config.num_channels = channels
    if config.model_type == "timm_wrapper":  # timm builds its stem from in_chans
        config.model_args = {**(getattr(config, "model_args", None) or {}), "in_chans": channels}
    return config


def spread_filters(
    filters: torch.Tensor, filter_bands: Sequence[str], bands: list[str], new_channels: NewChannels
) -> torch.Tensor:
    """First-layer weights ``(out, len(filter_bands), ...)``, one input channel per band of
    ``filter_bands``, as ``(out, len(bands), ...)``: each filter at its band's channel in ``bands``, the
    channels of bands ``filter_bands`` lacks initialised as ``new_channels`` says."""
    shape = (filters.shape[0], len(bands), *filters.shape[2:])
    if new_channels == "zeros":
        weights = torch.zeros(shape, dtype=filters.dtype)
    else:
        weights = filters.mean(dim=1, keepdim=True).expand(shape).clone()
    for channel, band in enumerate(filter_bands):
        if band in bands:
            weights[:, bands.index(band)] = filters[:, channel]
    return weights


def input_layer_keys(net: PreTrainedModel) -> list[str]:
    """The state dict keys whose shape follows the input channel count (the first layer's): those that
    differ in the same network built for one channel more, on the meta device (no memory, no init)."""
    channels = getattr(net.config, "num_channels", 3)
    with torch.device("meta"):
        probe = type(net)(with_channels(net.config, channels + 1)).state_dict()
    return [key for key, value in net.state_dict().items() if probe[key].shape != value.shape]


def for_bands(
    net: PreTrainedModel, bands: list[str], new_channels: NewChannels, net_bands: Sequence[str] = RGB_BANDS
) -> PreTrainedModel:
    """The pretrained ``net``, whose input channels are ``net_bands``, rebuilt for ``bands``: every
    weight kept but the first layer's, which is spread by band name (see :func:`spread_filters`), also
    where only the order differs (EuroSAT MS stores B8A last; weights take it ninth)."""
    if list(bands) == list(net_bands):
        return net
    state = net.state_dict()
    for key in input_layer_keys(net):
        value = state[key]
        if value.ndim < 2 or value.shape[1] != len(net_bands):
            raise ConfigError(
                f"model.input_bands: cannot give this {net.config.model_type} model {len(bands)} input channels "
                f"({key} has shape {tuple(value.shape)}); train it on its own bands, {', '.join(net_bands)}"
            )
        state[key] = spread_filters(value, net_bands, list(bands), new_channels)
    wider = type(net)(with_channels(net.config, len(bands)))
    wider.load_state_dict(state)
    return wider.train(net.training)
