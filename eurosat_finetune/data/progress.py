"""Progress of long steps (a download, an extraction, the decode cache): tqdm's bar on a terminal, as
Lightning's own progress bar, and a few log lines where the output is a file (a batch job's log).

A step done within ``SHOW_AFTER_S`` shows nothing, so short ones stay quiet. tqdm's ``TQDM_*``
environment variables change its defaults (``TQDM_DISABLE=1`` hides every bar); ``TQDM_DELAY`` also
replaces ``SHOW_AFTER_S`` here (``TQDM_DELAY=0`` shows even short steps).
"""

import io
import logging
import os
import sys

from tqdm import tqdm

log = logging.getLogger(__name__)

SHOW_AFTER_S = 2.0
LOG_EVERY_S = 30.0  # a ten-minute download writes about twenty lines to a log, not thousands
# where there is no bar to redraw, each line says it all: done, total, rate and time left
LOG_LINE = "{desc}: {percentage:.0f}% ({n_fmt} of {total_fmt}{unit}, {rate_fmt}, {remaining} left)"
LOG_LINE_NO_TOTAL = "{desc}: {n_fmt}{unit} ({rate_fmt})"


class LogLines(io.TextIOBase):
    """A file for tqdm that turns each status it writes (``\\r<status>``) into an INFO record."""

    def __init__(self) -> None:
        super().__init__()
        self.last = ""

    def write(self, text: str) -> int:
        status = text.strip("\r\n ")
        done = status.split(" (")[0]  # tqdm's close() writes the last status again, with a new rate
        if status and done != self.last:
            log.info(status)
            self.last = done
        return len(text)


def on_terminal() -> bool:
    return sys.stderr.isatty()


def progress_bar(total: int | None, desc: str, unit: str, unit_scale: bool = False, initial: int = 0) -> tqdm:
    """A progress bar for ``total`` units (bytes with ``unit="B", unit_scale=True``; files, images).

    Also the ``tqdm_class`` of huggingface_hub's downloader, which calls it with these keywords."""
    delay = float(os.environ.get("TQDM_DELAY", SHOW_AFTER_S))
    common = {"total": total, "desc": desc, "unit": unit, "unit_scale": unit_scale, "initial": initial, "delay": delay}
    if on_terminal():
        return tqdm(**common, dynamic_ncols=True)
    line = LOG_LINE if total else LOG_LINE_NO_TOTAL
    return tqdm(**common, file=LogLines(), mininterval=LOG_EVERY_S, bar_format=line)
