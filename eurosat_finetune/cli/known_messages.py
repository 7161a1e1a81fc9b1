"""Libraries' messages known to be harmless in the ``eurosat`` command, silenced while it runs, by their text.

Each is in :data:`KNOWN_MESSAGES` with why it is harmless here; every other warning is shown as before. They
are silenced only within :func:`quieted`, which ``main`` enters, as do the learning curve's and the seed
study's runs (a Python user of the package sees them all), and not at all where the environment sets
``EUROSAT_ALL_MESSAGES=1``. ``tests/test_known_messages.py`` checks that
each pattern still matches its library's current text, so a reworded message is noticed, not shown again.
"""

import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rasterio.errors import NotGeoreferencedWarning

SHOW_ALL = "EUROSAT_ALL_MESSAGES"  # set to 1: silence nothing


@dataclass(frozen=True)
class KnownMessage:
    pattern: str
    """A regular expression matched at the message's start (as ``warnings.filterwarnings`` matches)."""
    why: str
    """Why it is harmless in this command."""
    source: str
    """The module whose text it matches (its string literals are checked by the tests)."""
    category: type[Warning] = Warning
    """For a warning: its class (or a base); ignored for a logged message."""
    logger: str | None = None
    """For a message logged (Lightning's ``rank_zero_info``) rather than warned: its logger's name."""


KNOWN_MESSAGES = (
    KnownMessage(
        r"💡 Tip: For seamless cloud logging and experiment tracking, try installing \[litlogger\]",
        "an advertisement for a cloud service, printed by every run; the command logs to its run folder",
        "lightning.pytorch.trainer.connectors.logger_connector.logger_connector",
        logger="lightning.pytorch.utilities.rank_zero",
    ),
    KnownMessage(
        r"The dirpath has changed from .* won't be reloaded",
        "every run has a run folder of its own, so a checkpoint restored into another run always comes from "
        "another folder; that run's best and last checkpoints are its own (a fit resumed in its own folder keeps "
        "the records, see cli/resume.py)",
        "lightning.pytorch.callbacks.model_checkpoint",
        UserWarning,
    ),
    KnownMessage(
        r"The '\w+' does not have many workers which may be a bottleneck",
        "data.loader.num_workers is the command's option, documented in docs/configuration.md; the images come "
        "from the memory-mapped decode cache, cheap to serve without workers (the demo's 0 are deliberate)",
        "lightning.pytorch.trainer.connectors.data_connector",
        UserWarning,  # Lightning's PossibleUserWarning
    ),
    KnownMessage(
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        "Lightning's own use of a torch function torch deprecated; nothing the user can change",
        "torch.utils._pytree",
        FutureWarning,
    ),
    KnownMessage(
        r"Dataset has no geotransform, gcps, or rpcs",
        "eurosat predict opens every file to ask whether it is georeferenced (data/scenes/catalog.py): a plain "
        "image's answer is no, and it is classified whole; a scene mapped without georeferencing has a warning "
        "of the command's own",
        "rasterio",
        NotGeoreferencedWarning,
    ),
)


class _DropKnown(logging.Filter):
    """Drops the log records whose message starts with one of ``patterns``."""

    def __init__(self, patterns: list[str]) -> None:
        super().__init__()
        self.patterns = [re.compile(pattern) for pattern in patterns]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(pattern.match(message) for pattern in self.patterns)


@contextmanager
def quieted() -> Iterator[None]:
    """Silence the :data:`KNOWN_MESSAGES` within; every filter is removed on leaving (a notebook's later code
    sees the library's messages again)."""
    if os.environ.get(SHOW_ALL, "") not in ("", "0"):
        yield
        return
    logged: dict[str, list[str]] = {}
    for known in KNOWN_MESSAGES:
        if known.logger is not None:
            logged.setdefault(known.logger, []).append(known.pattern)
    filters = {name: _DropKnown(patterns) for name, patterns in logged.items()}
    with warnings.catch_warnings():
        for known in KNOWN_MESSAGES:
            if known.logger is None:
                warnings.filterwarnings("ignore", known.pattern, known.category)
        for name, drop in filters.items():
            logging.getLogger(name).addFilter(drop)
        try:
            yield
        finally:
            for name, drop in filters.items():
                logging.getLogger(name).removeFilter(drop)
