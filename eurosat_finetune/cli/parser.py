"""The ``eurosat`` command's argument parser: LightningCLI's, reading configs and checkpoint hyperparameters
written with the options' old names (:mod:`eurosat_finetune.renamed_options`), and refusing a bad value or a
typo in one line (a typo with the closest known names: :mod:`eurosat_finetune.cli.typos`)."""

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser

from eurosat_finetune.cli import typos
from eurosat_finetune.renamed_options import renamed_config


class EuroSATArgumentParser(LightningArgumentParser):
    """Every config file and ``--config`` string reaches ``parse_string``, and LightningCLI gives a
    ``--ckpt_path``'s hyperparameters to ``parse_object``: old option names are translated in both. An option's
    prefix is not taken for it (argparse would run ``--trainer.max_epoch`` as ``--trainer.max_epochs``, where
    a config file's key is refused): a typo is named, whatever it happens to abbreviate."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, *args: Any, **kwargs: Any) -> Namespace:
        # jsonargparse reads each config from its own folder: an error names paths from where the command started,
        # and tells a path given on the command line from one a config gave
        self.working_folder = Path.cwd()
        given = args[0] if args else kwargs.get("args")
        self.command_line = [str(arg) for arg in (sys.argv[1:] if given is None else given)]
        return super().parse_args(*args, **kwargs)

    def parse_string(self, content: str, *args: Any, **kwargs: Any) -> Namespace:
        try:
            loaded = yaml.safe_load(content)
        except yaml.YAMLError:
            loaded = None  # jsonargparse says what is wrong with it
        if isinstance(loaded, dict):
            path = args[0] if args else kwargs.get("path", "")
            if path:  # jsonargparse reads a config file from its folder: a key mistyped in it is named with it
                self.configs_read = {**getattr(self, "configs_read", {}), os.path.abspath(path): loaded}
            # a section given as a file is relative to this config's folder, as jsonargparse reads it
            translated = renamed_config(loaded, Path(path).parent if path else None)
            if translated is not loaded:
                content = yaml.safe_dump(translated, sort_keys=False)
        return super().parse_string(content, *args, **kwargs)

    def parse_object(self, obj: Namespace | dict[str, Any], *args: Any, **kwargs: Any) -> Namespace:
        if isinstance(obj, dict):
            obj = renamed_config(obj)
        return super().parse_object(obj, *args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """A value the parser refuses is one line naming the option, as every other user error is; a mistyped
        option, config key or config file also names the closest that exist (:mod:`.typos`). The usage (every
        option) is what ``--help`` is for."""
        if not self.exit_on_error:  # jsonargparse's own tries (e.g. each type of a union) expect the exception
            super().error(message, ex)
        # a key refused by a subcommand is refused by the root parser, which hands the subcommand's on
        refusing = getattr(ex, "subcommand_parser", None) or self
        configs = {**getattr(self, "configs_read", {}), **getattr(refusing, "configs_read", {})}
        explained = typos.explained(message, self, ex, configs)
        one_line = explained or " ".join(line.strip() for line in message.splitlines() if line.strip())
        command = refusing.prog.replace(" [options]", "")  # "eurosat fit" in a subcommand's parser
        see = "" if explained and "did you mean" in explained else f" (see {command} --help)"
        sys.stderr.write(f"{command.split()[0]}: error: {one_line}{see}\n")
        raise SystemExit(2)
