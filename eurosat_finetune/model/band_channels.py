"""A network for the bands of the data: its input channels are the bands, and a pretrained RGB network
keeps its RGB filters where B04, B03 and B02 are.

Hugging Face image classifiers take their channel count from ``config.num_channels`` (timm models
through transformers' wrapper from ``model_args.in_chans``). The first layer's weights, the only ones
whose shape depends on it, are rebuilt: the pretrained filters of red, green and blue go to the
channels of B04, B03 and B02, and every other channel starts as zeros (``new_channels: zeros``; the
network then computes at first exactly what the RGB network computed on those three bands) or as the
mean of the RGB filters (``mean``). Tiling the RGB filters over every band lost accuracy in 16 of 17
cases of a public benchmark, so it is not offered.
"""

import copy
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


def spread_rgb_filters(rgb: torch.Tensor, bands: list[str], new_channels: NewChannels) -> torch.Tensor:
    """First-layer weights ``(out, 3, ...)`` of an RGB network as ``(out, len(bands), ...)``: each RGB
    filter at its band's channel, the other channels initialised as ``new_channels`` says."""
    shape = (rgb.shape[0], len(bands), *rgb.shape[2:])
    if new_channels == "zeros":
        weights = torch.zeros(shape, dtype=rgb.dtype)
    else:
        weights = rgb.mean(dim=1, keepdim=True).expand(shape).clone()
    for channel, band in enumerate(RGB_BANDS):
        if band in bands:
            weights[:, bands.index(band)] = rgb[:, channel]
    return weights


def for_bands(net: PreTrainedModel, bands: list[str], new_channels: NewChannels) -> PreTrainedModel:
    """The pretrained RGB ``net`` rebuilt for ``bands``, every weight kept but the first layer's, which
    is spread by band name (see :func:`spread_rgb_filters`)."""
    if list(bands) == list(RGB_BANDS):
        return net
    wider = type(net)(with_channels(net.config, len(bands)))
    state, shapes = net.state_dict(), {key: value.shape for key, value in wider.state_dict().items()}
    for key, value in state.items():
        if shapes[key] == value.shape:
            continue
        if value.ndim < 2 or value.shape[1] != 3 or shapes[key][1] != len(bands):
            raise ConfigError(
                f"model.input_bands: cannot give this {net.config.model_type} model {len(bands)} input channels "
                f"({key} has shape {tuple(value.shape)}); train it on RGB data"
            )
        state[key] = spread_rgb_filters(value, list(bands), new_channels)
    wider.load_state_dict(state)
    return wider.train(net.training)
