"""Progress of long steps (a download, an extraction, the decode cache, a map): tqdm's bar on a terminal,
as Lightning's own progress bar, and a few log lines where the package's messages go to a log (a batch
job's output file).

A step done within ``SHOW_AFTER_S`` shows nothing, so short ones stay quiet. tqdm's ``TQDM_*``
environment variables change its defaults (``TQDM_DISABLE=1`` hides every bar); ``TQDM_DELAY`` also
replaces ``SHOW_AFTER_S`` here (``TQDM_DELAY=0`` shows even short steps).
"""

import io
import logging
import os
import sys
import time

from tqdm import tqdm
from tqdm.auto import tqdm as auto_tqdm

log = logging.getLogger(__name__)

SHOW_AFTER_S = 2.0
LOG_EVERY_S = 30.0  # a ten-minute download writes about twenty lines to a log, not thousands
# where there is no bar to redraw, each line says it all: done, total, rate and time left
LOG_LINE = "{desc}: {percentage:.0f}% ({n_fmt} of {total_fmt}{unit}, {rate_fmt}, {remaining} left)"
LOG_LINE_NO_TOTAL = "{desc}: {n_fmt}{unit} ({rate_fmt})"


class LoggedProgress(tqdm):
    """tqdm's progress as INFO log lines (tqdm's documented way to another front end: override
    ``display``): the first once the step has taken ``delay`` seconds, then one every ``LOG_EVERY_S``,
    and one at the end."""

    def __init__(self, total: int | None, **options: object) -> None:
        self.logged_n: int | None = None
        line = LOG_LINE if total else LOG_LINE_NO_TOTAL
        super().__init__(total=total, file=io.StringIO(), mininterval=options["delay"], bar_format=line, **options)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if self.n != self.logged_n:
            log.info(" ".join(self.format_meter(**self.format_dict).split()))  # tqdm pads rates to align them
            self.logged_n = self.n
        self.mininterval = LOG_EVERY_S  # after the first line
        return True

    def close(self) -> None:
        # tqdm's own close says nothing of a bar it has not shown yet; a step longer than the delay logs its end
        if not self.disable and time.time() - self.start_t >= self.delay:
            self.display()
        super().close()


def on_terminal() -> bool:
    return sys.stderr.isatty()


def show_after_s() -> float:
    try:
        return float(os.environ.get("TQDM_DELAY", SHOW_AFTER_S))
    except ValueError:
        return SHOW_AFTER_S


def progress_bar(total: int | None, desc: str, unit: str, unit_scale: bool = False, initial: int = 0) -> tqdm:
    """A progress bar for ``total`` units (bytes with ``unit="B", unit_scale=True``; files, images).

    Log lines where the package's INFO messages are shown (the CLI's) and the output is not a terminal;
    else tqdm's bar (a widget in a notebook). Also the ``tqdm_class`` of huggingface_hub's downloader,
    which calls it with these keywords."""
    options = {"desc": desc, "unit": unit, "unit_scale": unit_scale, "initial": initial, "delay": show_after_s()}
    if on_terminal() or not log.isEnabledFor(logging.INFO):
        return auto_tqdm(total=total, dynamic_ncols=True, **options)
    return LoggedProgress(total, **options)
