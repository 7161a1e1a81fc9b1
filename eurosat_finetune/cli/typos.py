"""A mistyped option, config key or config path, said in one line with the closest names that exist.

jsonargparse reports each as a message of its own (``unrecognized arguments: --data.predict_rot x``,
``Subcommand 'fit' does not accept option 'data.predict_rot'``, ``Parser key "config": File does not exist:
'...'``); :meth:`EuroSATArgumentParser.error <eurosat_finetune.cli.parser.EuroSATArgumentParser.error>` asks
:func:`explained` for a better line and keeps the library's own where it has none.
"""

import ast
import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml

from eurosat_finetune.renamed_options import RENAMED

# jsonargparse's wording (argparse's too, for the first); a reworded message is left as the library says it
UNRECOGNIZED = re.compile(r"^unrecognized arguments: (?P<args>.+)$", re.DOTALL)
NOT_ACCEPTED = re.compile(r"^(?:Subcommand '[^']+'|Group '(?P<group>[^']+)') does not accept option '(?P<key>[^']+)'")
NO_FILE = re.compile(r"""^Parser key "(?P<key>[^"]+)": File does not exist: (?P<path>'[^']*'|"[^"]*")\s*$""")
# a group's config file (``model: models/tiny_vit.yaml``, or ``--model file.yaml``) that cannot be loaded
NOT_LOADED = re.compile(r"""^Parser key "(?P<key>[^"]+)":\s*Unable to load config (?P<path>'[^']*'|"[^"]*")""")

# how many close names a message offers, how close (difflib's ratio) a name must be to be offered, and how
# much less close than the closest: one near miss is named alone, not beside names that share a prefix
SUGGESTIONS = 3
CUTOFF = 0.6
MARGIN = 0.1


def known_options(parser: Any) -> list[str]:
    """Every long option string ``parser`` accepts (``--data.predict_root``, ``--config``), nested groups'
    keys included. argparse keeps them only in a private mapping, read here alone (and tested in
    ``tests/test_cli_typos.py``, which fails if argparse or jsonargparse ever stops keeping them there)."""
    return sorted(option for option in parser._option_string_actions if option.startswith("--"))


def closest(name: str, known: list[str]) -> list[str]:
    """The known names closest to ``name``; an old name (:data:`RENAMED`) that is closest is offered as its
    new one, since that is what the user should type."""
    prefix = "--" if name.startswith("--") else ""
    old = {f"{prefix}{key}": f"{prefix}{new}" for key, new in RENAMED.items()}
    return list(dict.fromkeys(old.get(match, match) for match in _nearest(name, [*known, *old])))


def _nearest(name: str, candidates: list[str]) -> list[str]:
    """The candidates closest to ``name``, none much less close than the closest."""
    matches = difflib.get_close_matches(name, candidates, n=SUGGESTIONS, cutoff=CUTOFF)
    ratios = [difflib.SequenceMatcher(None, name, match).ratio() for match in matches]
    return [match for match, ratio in zip(matches, ratios, strict=True) if ratio >= ratios[0] - MARGIN]


def did_you_mean(names: list[str]) -> str:
    return f"did you mean {' or '.join(names)}?" if names else ""


def explained(message: str, parser: Any, ex: BaseException | None, configs: dict[str, dict[str, Any]]) -> str | None:
    """One line for a mistyped option, config key or config file, or None where ``message`` is none of these.
    ``parser`` is the one that refused (a subcommand's, for an option); ``configs`` the config files read, by
    absolute path, each as loaded."""
    if found := UNRECOGNIZED.match(message):
        return unrecognized(found["args"].split(" "), known_options(parser))
    if found := NOT_ACCEPTED.match(message):
        # a subcommand's parser knows its keys; jsonargparse hands it over on the exception
        subparser = getattr(ex, "subcommand_parser", None) or parser
        key = f"{found['group']}.{found['key']}" if found["group"] else found["key"]
        return unknown_key(key, known_options(subparser), configs)
    if found := NO_FILE.match(message):
        return missing_file(found["key"], ast.literal_eval(found["path"]))
    if found := NOT_LOADED.match(message):
        # jsonargparse reads a config from its own folder: paths are shown from where the command started
        start = getattr(parser, "working_folder", None) or Path.cwd()
        given = getattr(parser, "command_line", [])
        return missing_group_file(found["key"], ast.literal_eval(found["path"]), configs, start, given)
    return None


def unrecognized(args: list[str], known: list[str]) -> str | None:
    """``unrecognized option --data.predict_rot; did you mean --data.predict_root?`` for each option among
    ``args`` (an option's value is not named); None where no argument is an option (a stray value)."""
    options = [arg.partition("=")[0] for arg in args if arg.startswith("--")]
    if not options:
        return None
    if len(options) == 1:
        suggestion = did_you_mean(closest(options[0], known))
        return f"unrecognized option {options[0]}{'; ' + suggestion if suggestion else ''}"
    named = [
        f"{option} ({suggestion})" if (suggestion := did_you_mean(closest(option, known))) else option
        for option in options
    ]
    return f"unrecognized options {', '.join(named)}"


def unknown_key(key: str, known: list[str], configs: dict[str, dict[str, Any]]) -> str:
    """``data.predict_rot`` in ``configs/run.yaml`` is not an option; did you mean ``data.predict_root``?"""
    files = [path for path, loaded in configs.items() if _holds(loaded, key.split("."))]
    where = f" in {', '.join(_shown(Path(path)) for path in files)}" if files else ""
    suggestion = did_you_mean([option.removeprefix("--") for option in closest(f"--{key}", known)])
    return f"unrecognized key {key}{where}{'; ' + suggestion if suggestion else ''}"


def missing_file(key: str, path: str) -> str:
    """``--config configs/demo.yml: no such file (did you mean configs/demo.yaml?)``."""
    given = Path(path)
    close = [_shown(given.parent / name) for name in _close_names(given.parent, given.name)]
    return f"--{key} {_shown(given)}: no such file{_suggested(close)}"


def missing_group_file(
    key: str, path: str, configs: dict[str, dict[str, Any]], start: Path, command_line: list[str]
) -> str | None:
    """``model: models/tiny_vt.yaml in configs/my.yaml: no such file (did you mean models/tiny_vit.yaml?)``,
    for a group's file named in a config (read relative to that config's folder, as jsonargparse does) or
    on the command line (``command_line``, read from ``start``); None where the value is not a path (inline
    YAML that does not parse) or the file is there (then it is its contents that failed to load)."""
    try:
        if not isinstance(yaml.safe_load(path), str) or "\n" in path:
            return None
    except yaml.YAMLError:
        return None  # inline YAML: the library says what is wrong in it
    option = f"--{key}"
    given = any(
        arg == f"{option}={path}" or (arg == option and following == path)
        for arg, following in zip(command_line, [*command_line[1:], None], strict=True)
    )
    files = [] if given else [Path(file) for file, loaded in configs.items() if _value(loaded, key.split(".")) == path]
    folder = files[-1].parent if files else start  # the last config read gave the value
    if (folder / path).exists():
        return None
    where = f"{key}: {path} in {_shown(files[-1], start)}" if files else f"{option} {path}"
    if files and (start / path).exists():  # written from the working folder, where configs read from their own
        relative = Path(os.path.relpath(start / path, folder)).as_posix()
        return f"{where}: no such file in {_shown(folder, start)}/, the config's folder (did you mean {relative}?)"
    written = Path(path)  # suggested as it would be written there
    close = [(written.parent / name).as_posix() for name in _close_names(folder / written.parent, written.name)]
    return f"{where}: no such file{_suggested(close) or _beside_configs(path, configs, start)}"


def _beside_configs(path: str, configs: dict[str, dict[str, Any]], start: Path) -> str:
    """`` (did you mean configs/models/tiny_vit.yaml?)`` where ``path`` (given on the command line) is there
    relative to the folder of a config read, as it is written in such a config."""
    folders = [Path(config).parent for config in reversed(list(configs))]  # the last read first
    found = [_shown(folder / path, start) for folder in folders if (folder / path).exists()]
    return _suggested(found[:1])


def _close_names(folder: Path, name: str) -> list[str]:
    """The names of the files in ``folder`` closest to ``name`` (as close as options' suggestions)."""
    return _nearest(name, [entry.name for entry in folder.iterdir()] if folder.is_dir() else [])


def _suggested(paths: list[str]) -> str:
    return f" ({did_you_mean(paths)})" if paths else ""


_ABSENT = object()


def _value(config: Any, keys: list[str]) -> Any:
    """The dotted key's value in a loaded config (``{fit: {model: ...}}`` or a subcommand's), or ``_ABSENT``."""
    if not isinstance(config, dict):
        return _ABSENT
    if keys[0] in config:
        return config[keys[0]] if len(keys) == 1 else _value(config[keys[0]], keys[1:])
    found = (_value(config.get(subcommand), keys) for subcommand in ("fit", "validate", "test", "predict"))
    return next((value for value in found if value is not _ABSENT), _ABSENT)


def _holds(config: Any, keys: list[str]) -> bool:
    """Whether a loaded config (``{fit: {data: ...}}`` or a subcommand's) holds the dotted key."""
    return _value(config, keys) is not _ABSENT


def _shown(path: Path, start: Path | None = None) -> str:
    """A path as the user likely typed it: relative to the working folder (``start``) where it is under it."""
    relative = os.path.relpath(path, start)
    return path.as_posix() if relative.startswith("..") else Path(relative).as_posix()
