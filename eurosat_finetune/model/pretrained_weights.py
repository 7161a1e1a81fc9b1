"""``model.weights``: a timm network started from a Sentinel-2 state dict, known by name
(:mod:`.sentinel2_weights`) or given as a URL or path with what it expects.

The network is timm's, inside transformers' timm wrapper, so checkpoints, the Hugging Face export and
the ONNX export treat it as any other classifier here. Its input channels are the data's bands, matched
to the weights' by name (:mod:`.band_channels`), and its normalisation is the weights', per band,
unless ``model.input.mean``/``std`` say otherwise.
"""

import dataclasses
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from jsonargparse.typing import PositiveFloat, PositiveInt
from transformers import PreTrainedModel, TimmWrapperConfig, TimmWrapperForImageClassification

from eurosat_finetune.data.bands import ESA_BANDS
from eurosat_finetune.errors import ConfigError, ModelLoadError
from eurosat_finetune.model.backbones import labels_of
from eurosat_finetune.model.band_channels import NewChannels, for_bands
from eurosat_finetune.model.sentinel2_weights import KNOWN_FILES, KNOWN_WEIGHTS
from eurosat_finetune.model.weights_file import HASH_IN_NAME, is_url, local_file, read_state_dict

log = logging.getLogger(__name__)

# 8-bit true colour is reflectance 0 to 0.2 as 0 to 255 (ESA's TCI; docs/backbones.md): a pixel scaled
# to [0, 1] is reflectance x 5, so reflectance x 10,000 is that pixel x 2,000
TRUE_COLOUR_STORED_UNITS = 2_000.0


@dataclass(frozen=True)
class WeightsSpec:
    """A Sentinel-2 state dict given by URL or path, and what its network expects.

    Args:
        location: The URL or path of the state dict (``.pth``, ``.safetensors``).
        timm_model: Its timm model name (e.g. ``resnet50``).
        bands: Its input bands in order, by name (e.g. ``[B01, ..., B08, B8A, B09, ...]``).
        mean: Its normalisation per band (same order), in stored units (reflectance x 10,000).
        std: Likewise, its std per band (10000 for weights that take reflectance).
        input_size: Its native input size; null takes timm's for the model.
        sha256_prefix: The first hex digits of the file's SHA-256, checked (a local copy of a known file is
            checked as its download would be).
    """

    location: str
    timm_model: str
    bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[PositiveFloat, ...]
    input_size: PositiveInt | None = None
    sha256_prefix: str | None = None


def is_weights_source(source: str) -> bool:
    """Whether a run's ``pretrained_from`` names ``model.weights`` (a known name, URL or state dict file)
    rather than a Hugging Face model."""
    return source in KNOWN_WEIGHTS or is_url(source) or Path(source).is_file()  # a model directory is not a file


def sentinel2_band(name: str) -> str:
    """A band name as this package writes it (``B01``, ``B8A``): TorchGeo's ``B1`` and ``B8a`` are accepted."""
    name = name.strip().upper()
    return f"B0{name[1:]}" if len(name) == 2 and name[1:].isdigit() else name


def weights_spec(weights: str | WeightsSpec | dict | None) -> WeightsSpec | None:
    """``model.weights`` as a spec: a known name's entry, or the spec given (as the command's parser makes it,
    or as the plain dict a checkpoint holds) checked; None without weights. What is wrong is a one-line error
    that names the option."""
    if weights is None:
        return None
    if isinstance(weights, str):
        return known_weights(weights)
    spec = weights if isinstance(weights, WeightsSpec) else spec_of(weights)
    if spec.location in KNOWN_WEIGHTS or Path(spec.location).name in KNOWN_FILES:
        raise ConfigError(
            f"model.weights.location={spec.location!r} is known and brings its own model, bands and normalisation: "
            f"give it alone, as model.weights={spec.location!r} (a spec describes a state dict of its own)"
        )
    if spec.timm_model.startswith("hf-hub:"):
        raise ConfigError(
            f"model.weights.timm_model={spec.timm_model!r}: give timm's architecture name (e.g. resnet50); the weights "
            "are model.weights.location, and the hub cannot be reached from every machine"
        )
    names = tuple(sentinel2_band(band) for band in spec.bands)
    unknown = [band for band in names if band not in ESA_BANDS]
    if unknown or len(set(names)) != len(names):
        raise ConfigError(
            f"model.weights.bands={list(spec.bands)}: name each Sentinel-2 band once, from {', '.join(ESA_BANDS)}"
        )
    for option, values in (("model.weights.mean", spec.mean), ("model.weights.std", spec.std)):
        if len(values) != len(names):
            raise ConfigError(f"{option} has {len(values)} values for {len(names)} bands; give one per band")
    # the parser's restricted numbers (PositiveFloat ...) as floats: the normalisation goes into checkpoints
    input_size = None if spec.input_size is None else int(spec.input_size)
    mean, std = tuple(float(x) for x in spec.mean), tuple(float(x) for x in spec.std)
    return replace(spec, bands=names, mean=mean, std=std, input_size=input_size)


def known_weights(name: str) -> WeightsSpec:
    """The spec of a known name, or of a local copy of a known file (checked against the hash in its name)."""
    known = KNOWN_WEIGHTS.get(name) or KNOWN_FILES.get(Path(name).name)
    if known is None:
        described = is_url(name) or "/" in name or ("." in name and "_Weights." not in name)
        raise ConfigError(
            f"model.weights={name!r}: a state dict of its own needs a spec, {{location: {name}, timm_model: ..., "
            "bands: [...], mean: [...], std: [...]}: its timm model name, its input bands in order, and each band's "
            "mean and std in stored units (reflectance x 10,000; e.g. 0 and 10000 for weights that take reflectance)"
            if described
            else f"model.weights={name!r} is not a known name; known names are {', '.join(KNOWN_WEIGHTS)} (or give "
            "a spec of a state dict: {location: <URL or path>, timm_model: ..., bands: [...], mean: [...], std: [...]})"
        )
    copy = name not in KNOWN_WEIGHTS  # a local copy of a known file, by its name
    prefix = HASH_IN_NAME.search(Path(known.url).name)
    return WeightsSpec(
        location=name if copy else known.url,
        timm_model=known.timm_model,
        bands=known.bands,
        mean=known.mean,
        std=known.std,
        input_size=known.input_size,
        sha256_prefix=prefix.group(1) if copy and prefix else None,
    )


def spec_of(values: dict) -> WeightsSpec:
    """A spec from its plain dict (a checkpoint's, or a Python caller's); a field it lacks or does not have
    is one line."""
    fields = [field.name for field in dataclasses.fields(WeightsSpec)]
    required = [field.name for field in dataclasses.fields(WeightsSpec) if field.default is dataclasses.MISSING]
    missing = [name for name in required if values.get(name) is None]
    unknown = sorted(set(values) - set(fields))
    if missing or unknown:
        raise ConfigError(
            f"model.weights {'needs ' + ', '.join(missing) if missing else 'has no ' + ', '.join(unknown)}: a spec "
            f"of a state dict has {', '.join(fields)} (the last two optional)"
        )
    return WeightsSpec(**values)


def network(
    spec: WeightsSpec,
    overrides: dict,
    data_bands: list[str],
    new_channels: NewChannels,
    class_names: list[str],
) -> PreTrainedModel:
    """timm's ``spec.timm_model`` with the weights' state dict and a new head for ``class_names``, its
    first layer then rebuilt for ``data_bands`` by name. ``overrides`` are fields of transformers'
    ``TimmWrapperConfig`` (e.g. ``{"model_args": {"drop_path_rate": 0.1}}``)."""
    if not set(data_bands) & set(spec.bands):
        raise ConfigError(
            f"model.weights: the weights take {', '.join(spec.bands)}, none of the data's bands "
            f"({', '.join(data_bands)}); choose data.bands among them"
        )
    if overrides.get("model_type", "timm_wrapper") != "timm_wrapper":
        raise ConfigError(
            f"model.network.config_overrides has model_type={overrides['model_type']!r}, but model.weights makes a "
            "timm network: drop model.network.config_overrides (or keep only fields of transformers' "
            "TimmWrapperConfig, e.g. model_args)"
        )
    try:
        import timm  # an extra (transformers' wrapper needs it too), so imported only here
    except ImportError:
        raise ModelLoadError("model.weights makes a timm network: `pip install 'eurosat-finetune[timm]'`") from None

    if not timm.is_model(spec.timm_model):
        raise ConfigError(
            f"model.weights.timm_model={spec.timm_model!r} is not a timm model in timm {timm.__version__} "
            "(e.g. resnet50, vit_small_patch16_224; timm.list_models() lists them)"
        )
    model_args = {**overrides.get("model_args", {}), "in_chans": len(spec.bands)}
    fields = {key: value for key, value in overrides.items() if key not in ("model_type", "model_args", "architecture")}
    config = TimmWrapperConfig(architecture=spec.timm_model, model_args=model_args, **fields, **labels_of(class_names))
    config.num_channels = len(spec.bands)  # what band_channels and the checks read
    net = TimmWrapperForImageClassification(config)
    file = local_file(spec.location, "model.weights", spec.sha256_prefix)
    load_weights(net, read_state_dict(file, "model.weights"), spec)
    return for_bands(net.train(), data_bands, new_channels, net_bands=spec.bands)


def load_weights(net: TimmWrapperForImageClassification, state: dict, spec: WeightsSpec) -> None:
    """Load ``state`` into the timm network, all but the head (a new one, for these classes); a ViT's
    final norm may be missing (SSL4EO-S12's MoCo and MAE encoders have none, as TorchGeo allows). Any
    other missing or unexpected key is a one-line error."""
    timm_model = net.timm_model
    head = next(name for name, module in timm_model.named_modules() if module is timm_model.get_classifier())
    state = {key: value for key, value in state.items() if not key.startswith(f"{head}.")}
    own = timm_model.state_dict()
    other_shape = [key for key, value in state.items() if key in own and own[key].shape != value.shape]
    left = [key for key in own if key not in state and not key.startswith(f"{head}.")]
    missing = [key for key in left if not key.startswith(("norm.", "fc_norm."))]
    unexpected = [key for key in state if key not in own]
    if other_shape or missing or unexpected:
        raise ModelLoadError(
            f"model.weights={spec.location!r} does not fit timm's {spec.timm_model} with {len(spec.bands)} input "
            f"channels: {len(other_shape)} weights of another shape (e.g. {other_shape[:2]}), {len(missing)} missing "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); check "
            "model.weights.timm_model and model.weights.bands, and that the file is the network's state dict alone"
        )
    if left:
        log.info("model.weights has no %s: they start as timm initialises them", ", ".join(left))
    timm_model.load_state_dict(state, strict=False)


def normalisation(
    spec: WeightsSpec, data_bands: list[str], data_statistics: tuple[list[float], list[float]] | None
) -> tuple[list[float], list[float]]:
    """Each data band's mean and std as the weights expect them, in the data's units: stored
    reflectance x 10,000, or for 8-bit true colour (``data_statistics`` None) a pixel scaled to [0, 1].
    A band the weights do not have keeps the data's own statistics (its filters start new)."""
    if data_statistics is None:  # RGB JPEGs: the weights' figures in units of a [0, 1] pixel
        scale, (own_mean, own_std) = TRUE_COLOUR_STORED_UNITS, ([0.0] * len(data_bands), [1.0] * len(data_bands))
    else:
        scale, (own_mean, own_std) = 1.0, data_statistics
    at = {band: i for i, band in enumerate(spec.bands)}
    mean = [spec.mean[at[band]] / scale if band in at else own_mean[i] for i, band in enumerate(data_bands)]
    std = [spec.std[at[band]] / scale if band in at else own_std[i] for i, band in enumerate(data_bands)]
    return mean, std
