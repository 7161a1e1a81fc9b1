"""Download a file that survives a dropped connection: resumed where it stopped, checked over the whole
file, and appearing under its name only when complete.

The transfer is huggingface_hub's ``http_get``, the downloader behind every ``from_pretrained``: it
shows a progress bar (bytes, rate, time left), retries a connection dropped mid-way by asking the
server for the rest (an HTTP range, which Zenodo and hf.co serve), and starts over cleanly when a
server answers a range request with the whole file. pooch, torchvision's and torch.hub's downloaders
retry from zero at best, which for a 2 GB archive on a flaky link may never finish. ``http_get`` is
not in huggingface_hub's documented API, so this is the one module that calls it, and
tests/test_downloads.py runs it against servers that drop connections and ignore ranges.

What a run that stopped (a dropped connection that retries did not mend, a killed process) had
downloaded stays beside the destination (:func:`partial_download_path`), and the next run asks only for
the rest. Callers hold a lock (:mod:`.made_once`), so one process writes it at a time.
"""

import errno
import hashlib
import logging
import os
import shutil
from pathlib import Path

from huggingface_hub import is_offline_mode
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import get_session
from tqdm import tqdm

from eurosat_finetune.data.progress import progress_bar
from eurosat_finetune.errors import DownloadError, first_line

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
HEAD_TIMEOUT_S = 30.0


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """The hex digest of a file (``hashlib`` algorithm name), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def md5sum(path: Path) -> str:
    return file_digest(path, "md5")


def partial_download_path(dest: Path, url: str) -> Path:
    """Where a download of ``url`` to ``dest`` collects its bytes; named by the url too, so a changed
    url never resumes another file's bytes."""
    return dest.with_name(f".{dest.name}.{hashlib.sha256(url.encode()).hexdigest()[:8]}.part")


def size_of(count: int | float) -> str:
    return tqdm.format_sizeof(count, "B")


def remote_size(url: str) -> int | None:
    """The size the server gives for ``url`` (a HEAD request), None if it gives none; a server that cannot
    be reached raises here, at once, rather than after the downloader's retries."""
    response = get_session().head(url, follow_redirects=True, timeout=HEAD_TIMEOUT_S)
    length = response.headers.get("Content-Length")
    return int(length) if response.is_success and length and length.isdigit() else None


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse to start writing ``needed`` bytes into ``folder`` where the disk has less free."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(
            f"{what} needs {size_of(needed)} in {folder}, which has {size_of(free)} free; free some space "
            "there or choose another folder"
        )


def download_file(
    url: str,
    dest: Path,
    expected: str | None = None,
    algorithm: str = "md5",
    by_hand: str = "",
    mismatch_hint: str = "",
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``, which appears only when complete and, where
    ``expected`` is given, when its ``algorithm`` digest starts with ``expected``.

    A mismatch removes the download (and says so, with ``mismatch_hint``); any other failure keeps
    what arrived, for the next call to resume. ``by_hand`` tells a user without network where the
    file can be put instead.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_download_path(dest, url)
    for stale in dest.parent.glob(f".{dest.name}.*.part"):  # of another url: no use now
        if stale != partial:
            stale.unlink()
    by_hand = by_hand or f"place the file at {dest}"
    if is_offline_mode():  # huggingface_hub's client refuses every request then, not only the hub's
        raise DownloadError(
            f"HF_HUB_OFFLINE is set, which stops downloads through huggingface_hub (as it stops Hugging Face "
            f"datasets'), this one's too: unset it to download {url}, or download it elsewhere and {by_hand}"
        )
    try:
        size = remote_size(url)
    except Exception as err:  # huggingface_hub's client raises httpx's errors, which are not OSErrors
        raise DownloadError(
            f"cannot download {url} ({first_line(err)}); without network access, download it elsewhere and {by_hand}"
        ) from None
    have = partial.stat().st_size if partial.is_file() else 0
    if size is not None and have > size:  # not a start of this file
        partial.unlink()
        have = 0
    if size is not None:
        check_free_space(dest.parent, size - have, f"downloading {url}")
    if have:
        log.info("Resuming the download of %s at %s of %s", url, size_of(have), size_of(size) if size else "?")
    if size is None or have < size:
        fetch(url, partial, have, dest.name, by_hand)
    actual = file_digest(partial, algorithm)
    if expected is not None and not actual.startswith(expected.lower()):
        partial.unlink()
        raise DownloadError(
            f"the {algorithm} of the download of {url} is {actual}, not {expected}; the file was removed"
            f"{'; ' + mismatch_hint if mismatch_hint else ''}"
        )
    if expected is None:
        log.warning("Downloaded %s without a checksum to verify; its %s is %s", url, algorithm, actual)
    os.replace(partial, dest)
    return dest


def fetch(url: str, partial: Path, have: int, name: str, by_hand: str) -> None:
    """Append to ``partial`` the bytes of ``url`` from ``have`` on (all of them again where the server
    ignores the range), retrying dropped connections."""
    try:
        with open(partial, "ab") as file:
            http_get(url, file, resume_size=have, displayed_filename=name, tqdm_class=progress_bar)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise stopped(url, partial, err, by_hand) from None
        raise DownloadError(
            f"the disk of {partial.parent} filled up after {size_of(partial.stat().st_size)} of {url}; "
            "free some space there and run again (the download resumes where it stopped)"
        ) from None
    except Exception as err:  # the client's transport errors, which are not OSErrors
        raise stopped(url, partial, err, by_hand) from None


def stopped(url: str, partial: Path, err: BaseException, by_hand: str) -> DownloadError:
    kept = partial.stat().st_size if partial.is_file() else 0
    resume = f"{size_of(kept)} kept in {partial}: run again to resume" if kept else "run again to retry"
    return DownloadError(
        f"the download of {url} stopped ({first_line(err)}); {resume}, or without network access download "
        f"it elsewhere and {by_hand}"
    )
