"""Make a thing exactly once, however many processes ask for it at the same moment.

Ranks of one job (torchrun, SLURM, several nodes on a shared filesystem) and independent jobs all
instantiate the datamodule at once, before any Lightning hook could elect one of them. Whoever finds
the thing missing takes a file lock beside it; the others wait on the lock, then find the thing made.
The lock is the operating system's (``flock``), so a process killed while holding it releases it.
"""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

T = TypeVar("T")


def made_once(lock_path: Path, find: Callable[[], T | None], make: Callable[[], T], what: str) -> T:
    """``find()``'s result if there is one; else ``make()``'s, called by one process at a time.

    ``find`` must recognise only complete results (``make`` writes under temporary names and renames
    last), and ``make`` may assume it is the only writer: it can remove the temporary files that a
    killed process left behind.
    """
    found = find()
    if found is not None:
        return found  # the common case: nothing to write, no lock taken
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("Waiting for another process to finish %s (lock %s)", what, lock_path)
        lock.acquire()
    try:
        found = find()  # made by the process we waited for: accept it
        return found if found is not None else make()
    finally:
        lock.release()
