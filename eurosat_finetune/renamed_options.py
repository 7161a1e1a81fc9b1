"""Options renamed when they were put in named groups: command lines, configs and checkpoints written with the
old names keep working, each old name translated to its new one with one :class:`RenamedOptionWarning`.

One table, read by every route an option arrives by: the command line and config files (the CLI's parser,
:mod:`eurosat_finetune.cli.parser`), the model's hyperparameters in a checkpoint (LightningCLI's
``--ckpt_path``, and ``ImageClassifier.load_from_checkpoint``).
"""

import copy
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from eurosat_finetune.errors import ConfigError

RENAMED: dict[str, str] = {
    # data
    "data.download": "data.download.enabled",  # a group of that name now: a value that is not a dict moves
    "data.url": "data.download.url",
    "data.md5": "data.download.md5",
    "data.sample_images_per_class": "data.synthetic_images_per_class",
    "data.val_fraction": "data.split.val_fraction",
    "data.test_fraction": "data.split.test_fraction",
    "data.split_seed": "data.split.seed",
    "data.split_files": "data.split.files",
    "data.train_size": "data.split.train_size",
    "data.allow_split_change": "data.split.allow_change",
    "data.decode_cache": "data.cache.enabled",
    "data.cache_dir": "data.cache.dir",
    "data.map_scenes": "data.maps.scenes",
    "data.tile_size": "data.maps.window",
    "data.tile_stride": "data.maps.stride",
    "data.scene_bands": "data.maps.raster_bands",
    "data.scene_scale_max": "data.maps.rgb_scale_max",
    "data.scene_offset": "data.maps.raster_offset",
    "data.mask_clouds": "data.maps.mask_clouds",
    "data.batch_size": "data.loader.batch_size",
    "data.num_workers": "data.loader.num_workers",
    # model
    "model.model_name_or_path": "model.network.pretrained",
    "model.new_channels": "model.network.new_channels",
    "model.freeze_backbone": "model.network.freeze_backbone",
    "model.torch_compile": "model.network.torch_compile",
    "model.image_size": "model.input.size",
    "model.image_mean": "model.input.mean",
    "model.image_std": "model.input.std",
    "model.scheduler_interval": "model.optimization.scheduler_interval",
    "model.scheduler_frequency": "model.optimization.scheduler_frequency",
    "model.warmup_steps": "model.optimization.warmup_steps",
    "model.layer_decay": "model.optimization.layer_decay",
    "model.decay_norms_and_biases": "model.optimization.decay_norms_and_biases",
    "model.label_smoothing": "model.loss.label_smoothing",
    "model.class_weights": "model.loss.class_weights",
    "model.mixup_alpha": "model.loss.mixup_alpha",
    "model.cutmix_alpha": "model.loss.cutmix_alpha",
}
"""Old dotted option -> new dotted option, both from a subcommand's root (``data.batch_size`` ->
``data.loader.batch_size``). An old name that is now the name of the group its value moved into
(``data.download`` -> ``data.download.enabled``) is translated only where its value is not that group's:
not a dict (in a config), nor a dict or a file (on the command line)."""

# model: the five options of a state dict became one value, model.weights (a name, or a spec of the file)
WEIGHTS_FIELDS = {"weights_model": "timm_model", "weights_bands": "bands", "weights_mean": "mean", "weights_std": "std"}
# model: model_config was a whole architecture (model_name_or_path null) or overrides of a pretrained config;
# vit_config, its name before commit d5a0566, was read when model_config was null
NETWORK_CONFIGS = ("model_config", "vit_config")


def _regroup_model(model: dict[str, Any]) -> dict[str, str]:
    """model.weights and the four options that described its file as one spec; model_config (or vit_config)
    as model.network.architecture or model.network.config_overrides, by what it was."""
    described = {old: model.pop(old) for old in WEIGHTS_FIELDS if old in model}
    given = {WEIGHTS_FIELDS[old]: value for old, value in described.items() if value is not None}
    if given:  # a state dict by URL or path: its location and what it expects
        weights = model.get("weights")
        model["weights"] = {**(weights if isinstance(weights, dict) else {"location": weights}), **given}
    moved = {old: f"weights.{WEIGHTS_FIELDS[old]}" for old in described}
    configs = {old: model.pop(old) for old in NETWORK_CONFIGS if old in model}
    if not configs:
        return moved
    config = next((value for value in configs.values() if value is not None), None)
    network = model.get("network") if isinstance(model.get("network"), dict) else {}
    built_new = "pretrained" in network and network["pretrained"] is None and model.get("weights") is None
    new = "architecture" if built_new else "config_overrides"
    if config is not None:
        if network.get(new) not in (None, config):
            raise ConfigError(f"model.{next(iter(configs))} and model.network.{new} are both given: keep {new} alone")
        model["network"] = {**network, new: config}
    return moved | {old: f"network.{new}" for old in configs}


def _regroup_model_args(args: list[str]) -> list[str]:
    """The command line's old weights and network options (their other names already translated by RENAMED):
    as :func:`_regroup_model` moves them in a config."""
    keys = [arg[2:].partition("=")[0] if arg.startswith("--") else None for arg in args]
    described = any(key in (f"model.{old}" for old in WEIGHTS_FIELDS) for key in keys)
    built_new = _arg_value(args, "model.network.pretrained") in ("null", "None", "none") and "model.weights" not in keys
    renamed = {f"model.{old}": f"model.weights.{new}" for old, new in WEIGHTS_FIELDS.items()}
    if described:  # then model.weights is the file's location
        renamed["model.weights"] = "model.weights.location"
    new = "model.network.architecture" if built_new else "model.network.config_overrides"
    renamed |= {f"model.{old}": new for old in NETWORK_CONFIGS}
    translated = []
    for arg, key in zip(args, keys, strict=True):
        within = [f"model.{config}" for config in NETWORK_CONFIGS]  # a key within the config (model_config.depths)
        old = next((name for name in within if (key or "").startswith(f"{name}.")), key if key in renamed else None)
        if old is not None:
            if old != "model.weights":  # its name stays; its value's place is what changed
                warn_renamed(old, renamed[old])
            arg = f"--{renamed[old]}{arg[2 + len(old) :]}"
        translated.append(arg)
    return translated


def _arg_value(args: list[str], key: str) -> str | None:
    """The value of the last ``--key value`` or ``--key=value`` in ``args``."""
    found = None
    for i, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if name == f"--{key}":
            found = value if equals else (args[i + 1] if i + 1 < len(args) else None)
    return found


REGROUPED: dict[str, Callable[[dict[str, Any]], list[str] | dict[str, str]]] = {"model": _regroup_model}
"""Per section (``data``, ``model``): a function that moves old keys whose new place depends on their values
(several old options that became one value) within the section's dict, and returns the old names it moved
(or a dict of each to its new name within the section)."""

REGROUPED_ARGS: dict[str, Callable[[list[str]], list[str]]] = {"model": _regroup_model_args}
"""Per section: the same for the command line, given the arguments after the RENAMED ones are translated."""

SUBCOMMANDS = ("fit", "validate", "test", "predict")


class RenamedOptionWarning(DeprecationWarning):
    """An option given by its name before the options were grouped; shown by the ``eurosat`` command."""


warned_in_command: set[str] | None = None
"""The old names a command has warned of, while it parses (a config and a checkpoint may both hold one):
set by the CLI for one command; None elsewhere, where each translation warns."""


def warn_renamed(old: str, new: str) -> None:
    if warned_in_command is not None:
        if old in warned_in_command:
            return
        warned_in_command.add(old)
    warnings.warn(f"{old} is now {new}; the old name still works but will be removed", RenamedOptionWarning, 3)


def renamed_args(args: list[str]) -> list[str]:
    """Command-line arguments with old option names (``--data.batch_size 64``, ``--data.batch_size=64``)
    replaced by their new ones."""
    args = _inline_old_group_args(args)
    translated = []
    for i, arg in enumerate(args):
        key, equals, value = arg[2:].partition("=")
        given = value if equals else (args[i + 1] if i + 1 < len(args) else None)
        if arg.startswith("--") and key in RENAMED and not _is_new_group(key, _loaded(given)):
            warn_renamed(key, RENAMED[key])
            arg = f"--{RENAMED[key]}{equals}{value}"
        translated.append(arg)
    for regroup in REGROUPED_ARGS.values():
        translated = regroup(translated)
    return translated


def _loaded(arg: str | None) -> Any:
    """A command-line value as the parser reads it (YAML), or the text itself where YAML cannot read it."""
    try:
        return yaml.safe_load(arg) if arg is not None else None
    except yaml.YAMLError:
        return arg


def _is_new_group(old: str, value: Any) -> bool:
    """Whether ``value``, given under the old name ``old``, is already the group that name is now: a dict, or
    (on the command line) a string, the group's config file."""
    return RENAMED[old].startswith(f"{old}.") and isinstance(value, dict | str)


def renamed_config(config: dict[str, Any], folder: Path | None = None) -> dict[str, Any]:
    """A copy of a config (a subcommand's, ``{data: ..., model: ...}``, or the whole command's,
    ``{fit: {data: ...}}``) with old keys moved to their new places; the config itself if it has none.
    A section given as a file (``model: models/tiny_vit.yaml``, relative to ``folder``, the config's) is
    read in where it holds old keys."""
    config = _inline_old_groups(config, folder)
    if not any(_has_old_keys(section) for section in _subcommand_configs(config)):
        return config
    config = copy.deepcopy(config)
    for section in _subcommand_configs(config):
        _move_old_keys(section)
    return config


def renamed_section(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """One section's values (e.g. a checkpoint's model hyperparameters) with old keys moved to their new places."""
    return renamed_config({name: values})[name]


SECTIONS = ("data", "model")


def _section_file_or_text(value: str, folder: Path | None) -> Any:
    """A section given as a string: the YAML file it names (relative to ``folder``), or YAML text."""
    path = folder / value if folder is not None and not Path(value).is_absolute() else Path(value)
    try:
        return yaml.safe_load(path.read_text()) if path.is_file() else yaml.safe_load(value)
    except (OSError, ValueError, yaml.YAMLError):  # not a file, and not YAML: the parser says what it is
        return None


def _inline_old_groups(config: dict[str, Any], folder: Path | None) -> dict[str, Any]:
    """``config`` with each section given as a file or YAML text that holds old keys read in: jsonargparse
    reads such a section itself, past the parser's translation. ``config`` itself where there is none."""
    if not any(isinstance(section.get(name), str) for section in _subcommand_configs(config) for name in SECTIONS):
        return config
    inlined, changed = copy.deepcopy(config), False
    for section in _subcommand_configs(inlined):
        for name in SECTIONS:
            loaded = _section_file_or_text(section[name], folder) if isinstance(section.get(name), str) else None
            if isinstance(loaded, dict) and _has_old_keys({name: loaded}):
                section[name], changed = loaded, True
    return inlined if changed else config


def _inline_old_group_args(args: list[str]) -> list[str]:
    """``--model file.yaml``, ``--data '{batch_size: 8}'``: a section given whole on the command line, with
    old keys, given translated instead (as JSON, which the parser reads as YAML)."""
    inlined = list(args)
    for i, arg in enumerate(args):
        for name in SECTIONS:
            if arg == f"--{name}" and i + 1 < len(args):
                at, value, prefix = i + 1, args[i + 1], ""
            elif arg.startswith(f"--{name}="):
                at, value, prefix = i, arg.partition("=")[2], f"--{name}="
            else:
                continue
            loaded = _section_file_or_text(value, None)
            if isinstance(loaded, dict) and _has_old_keys({name: loaded}):
                inlined[at] = prefix + json.dumps(renamed_section(name, loaded))
    return inlined


def _subcommand_configs(config: dict[str, Any]) -> list[dict[str, Any]]:
    nested = [config[name] for name in SUBCOMMANDS if isinstance(config.get(name), dict)]
    return nested or [config]


def _has_old_keys(config: dict[str, Any]) -> bool:
    for name in {old.split(".")[0] for old in RENAMED} | set(REGROUPED):
        section = config.get(name)
        if isinstance(section, dict) and (
            any(f"{name}.{key}" in RENAMED and not _is_new_group(f"{name}.{key}", section[key]) for key in section)
            or REGROUPED.get(name, _nothing)(copy.deepcopy(section))
        ):
            return True
    return False


def _nothing(section: dict[str, Any]) -> list[str]:
    return []


def _move_old_keys(config: dict[str, Any]) -> None:
    for old, new in RENAMED.items():
        *parents, key = old.split(".")
        holder = _at(config, parents)
        if holder is None or key not in holder or _is_new_group(old, holder[key]):
            continue
        value = holder.pop(key)  # first: the new group may take its place
        *new_parents, new_key = new.split(".")
        target = _at(config, new_parents, create=True)
        if new_key in target and target[new_key] != value:
            raise ConfigError(f"{old} and {new} are both given; {old} is the old name of {new}: keep {new} alone")
        target[new_key] = value
        warn_renamed(old, new)
    for name, regroup in REGROUPED.items():
        if isinstance(config.get(name), dict):
            moved = regroup(config[name])
            for old in moved:
                new = f"{name}.{moved[old]}" if isinstance(moved, dict) else f"the {name} group that replaced it"
                warn_renamed(f"{name}.{old}", new)


def _at(config: dict[str, Any], keys: list[str], create: bool = False) -> dict[str, Any] | None:
    """The dict at ``keys`` under ``config``; with ``create``, made where missing (or null)."""
    for key in keys:
        if not isinstance(config.get(key), dict):
            if not create:
                return None
            config[key] = {}
        config = config[key]
    return config
