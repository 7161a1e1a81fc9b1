"""Options as the plain values a checkpoint stores: loaded with ``torch.load(weights_only=True)`` (the
command's checks, LightningCLI's ``--ckpt_path``) and written to hparams.yaml by the loggers."""

from dataclasses import fields, is_dataclass
from pathlib import PurePath
from typing import Any


def plain(value: Any) -> Any:
    """``value`` in plain types: an options group (a dataclass) as a dict, the parser's restricted numbers
    (``PositiveInt`` ..., subclasses of int and float) as ints and floats, a tuple as a list, a path as a string."""
    if is_dataclass(value) and not isinstance(value, type):
        return {field.name: plain(getattr(value, field.name)) for field in fields(value)}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value) if isinstance(value, int) else float(value)
    return value
