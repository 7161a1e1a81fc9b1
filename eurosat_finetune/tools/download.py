"""Download a file that survives a dropped connection: resumed where it stopped, checked over the whole
file, and appearing under its name only when complete.

The transfer is huggingface_hub's ``http_get``, the downloader behind every ``from_pretrained``: it
shows a progress bar (bytes, rate, time left), asks the server for the rest of a connection that
dropped mid-way (an HTTP range request), and starts over cleanly when a server answers a range
request with the whole file. pooch, torchvision's and torch.hub's downloaders retry from zero at
best, which for a 2 GB archive on a flaky link may never finish. ``http_get`` is not in
huggingface_hub's documented API, so this is the one module that calls it, and
tests/test_downloads.py runs it against servers that drop and reset connections and ignore ranges.

``http_get`` itself retries only a connection that fails to open or closes early; a reset or an
outage of more than a few seconds ends it. :func:`fetch` then resumes it a few times more, waiting
longer each time. What a run that still stopped (or was killed) had downloaded stays beside the
destination (:func:`partial_download_path`), and the next run asks only for the rest. The partial
file is named by the url and by what the server says identifies the file's version (its ETag or
Last-Modified), so a file changed on the server is never spliced onto an older one's start. Callers
hold a lock (:mod:`.made_once`), so one process writes it at a time.
"""

import errno
import glob
import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from huggingface_hub import is_offline_mode
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import get_session
from tqdm import tqdm

from eurosat_finetune.errors import DownloadError, OutputError, first_line
from eurosat_finetune.tools.progress import progress_bar

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
HEAD_TIMEOUT_S = 30.0
RESUME_WAITS_S = (1, 2, 4, 8, 16)  # after http_get's own retries: about half a minute more of outage
RANGE_NOT_SATISFIABLE = 416


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """The hex digest of a file (``hashlib`` algorithm name), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def md5sum(path: Path) -> str:
    return file_digest(path, "md5")


def size_of(count: int | float) -> str:
    return tqdm.format_sizeof(count, "B")


@dataclass(frozen=True)
class Remote:
    """What a HEAD request says of a file: its size, whether ranges are served, and its version."""

    size: int | None
    ranges: bool
    version: str  # the ETag, else Last-Modified, else ""


def remote(url: str) -> Remote:
    """Ask the server about ``url`` (HEAD); one that cannot be reached raises here, at once, rather than
    after the downloader's retries."""
    response = get_session().head(url, follow_redirects=True, timeout=HEAD_TIMEOUT_S)
    if not response.is_success:  # some servers refuse HEAD (signed URLs): learn nothing, GET decides
        return Remote(None, False, "")
    length = response.headers.get("Content-Length", "")
    version = response.headers.get("ETag") or response.headers.get("Last-Modified") or ""
    ranges = response.headers.get("Accept-Ranges", "").lower() == "bytes"
    return Remote(int(length) if length.isdigit() else None, ranges, version)


def partial_download_path(dest: Path, url: str, version: str = "") -> Path:
    """Where a download of ``url`` (of this ``version``) to ``dest`` collects its bytes."""
    key = hashlib.sha256(f"{url}\n{version}".encode()).hexdigest()[:8]
    return dest.with_name(f".{dest.name}.{key}.part")


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse to start writing ``needed`` bytes into ``folder`` where the disk has less free."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise OutputError(
            f"{what} needs {size_of(needed)} in {folder}, which has {size_of(free)} free; free some space "
            "there or choose another folder"
        )


def offline_variable() -> str | None:
    """The variable that puts huggingface_hub offline, whose client then refuses every request."""
    if not is_offline_mode():
        return None
    return next((name for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(name)), "HF_HUB_OFFLINE")


def download_file(
    url: str,
    dest: Path,
    expected: str | None = None,
    algorithm: str = "md5",
    option: str = "data.url",
    by_hand: str = "",
    mismatch_hint: str = "",
    prefix: bool = False,
) -> Path:
    """Download ``url`` (``option``'s value) to ``dest`` and return ``dest``, which appears only when
    complete and, where ``expected`` is given, when its ``algorithm`` digest is ``expected`` (or, with
    ``prefix``, starts with it, as torch.hub's file names give it).

    A mismatch removes the download (and says so, with ``mismatch_hint``); any other failure keeps
    what arrived, for the next call to resume. ``by_hand`` tells a user without network where the
    file can be put instead. A ``file://`` url is copied.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    by_hand = by_hand or f"place the file at {dest}"
    if urlparse(url).scheme == "file":
        partial, resumed = copied(Path(url2pathname(urlparse(url).path)), dest, option), False
    else:
        partial, resumed = downloaded(url, dest, expected is not None, option, by_hand)
    actual = file_digest(partial, algorithm)
    if expected is not None and not (actual.startswith(expected.lower()) if prefix else actual == expected.lower()):
        partial.unlink()
        hint = "it was resumed from an earlier run's part: run again to download it whole" if resumed else mismatch_hint
        raise DownloadError(
            f"the {algorithm} of the download of {url} is {actual}, not {expected}; the file was removed"
            f"{'; ' + hint if hint else ''}"
        )
    if expected is None:
        log.warning("Downloaded %s without a checksum to verify; its %s is %s", url, algorithm, actual)
    os.replace(partial, dest)
    return dest


def copied(source: Path, dest: Path, option: str) -> Path:
    """Copy a local file to ``dest``'s partial path, with progress."""
    if not source.is_file():
        raise DownloadError(f"{option}={source.as_uri()!r}: no such file; give the url or path of the archive")
    partial, size = partial_download_path(dest, source.as_uri()), source.stat().st_size
    check_free_space(dest.parent, size, f"copying {source}")
    with source.open("rb") as src, partial.open("wb") as out, progress_bar(size, source.name, "B", True) as bar:
        while chunk := src.read(CHUNK_SIZE):
            out.write(chunk)
            bar.update(len(chunk))
    return partial


def downloaded(url: str, dest: Path, checked: bool, option: str, by_hand: str) -> tuple[Path, bool]:
    """Fetch ``url`` into its partial file, resuming an earlier run's where that is safe; return the file
    and whether it was resumed."""
    variable = offline_variable()
    if variable is not None:  # huggingface_hub's client refuses every request then, not only the hub's
        raise DownloadError(
            f"{variable} is set, which stops downloads through huggingface_hub (as it stops Hugging Face "
            f"datasets'), this one's too: unset it to download {url}, or download it elsewhere and {by_hand}"
        )
    try:
        server = remote(url)
    except Exception as err:  # huggingface_hub's client raises httpx's errors, which are not OSErrors
        raise DownloadError(
            f"cannot download {url} ({first_line(err)}); without network access, download it elsewhere and {by_hand}"
        ) from None
    partial = partial_download_path(dest, url, server.version)
    for stale in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):  # another url's or version's
        if stale != partial:
            stale.unlink()
    have = partial.stat().st_size if partial.is_file() else 0
    # resume only what can be told to be the same file: by a checksum, or by a version the server names
    resumable = checked or bool(server.version)
    if have and ((server.size is not None and have > server.size) or not resumable):
        partial.unlink()
        have = 0
    if server.size is not None:
        check_free_space(dest.parent, server.size - (have if server.ranges else 0), f"downloading {url}")
    if have:
        total = size_of(server.size) if server.size else "?"
        log.info("Resuming the download of %s at %s of %s", url, size_of(have), total)
    if server.size is None or have < server.size:
        fetch(url, partial, dest.name, option, by_hand, resumable)
    return partial, have > 0


def fetch(url: str, partial: Path, name: str, option: str, by_hand: str, resumable: bool) -> None:
    """Append to ``partial`` the rest of ``url`` (all of it again where the server ignores the range),
    resuming after resets and outages a few times more than ``http_get`` does; where it still stops, the
    part is kept for the next run if that can resume it."""
    for attempt, wait in enumerate((*RESUME_WAITS_S, None)):
        have = partial.stat().st_size if partial.is_file() else 0
        try:
            with open(partial, "ab") as file:
                http_get(url, file, resume_size=have, displayed_filename=name, tqdm_class=progress_bar)
            return
        except HfHubHTTPError as err:  # the server answered, with an error: retrying will not change it
            response = getattr(err, "response", None)
            status = response.status_code if response is not None else None
            if status == RANGE_NOT_SATISFIABLE and have and attempt == 0:
                # the part is the whole file (a run killed while checking it), or longer: the checksum decides
                if response.headers.get("Content-Range", "") == f"bytes */{have}":
                    return
                partial.unlink()
                continue
            if status is not None and 400 <= status < 500:
                raise DownloadError(
                    f"the server answered {status} for {option}={url!r} ({first_line(err)}); check the url"
                ) from None
            raise stopped(url, partial, err, by_hand, resumable) from None
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise stopped(url, partial, err, by_hand, resumable) from None
            raise OutputError(
                f"the disk of {partial.parent} filled up after {size_of(partial.stat().st_size)} of {url}; "
                "free some space there and run again (the download resumes where it stopped)"
            ) from None
        except Exception as err:  # the client's transport errors (a reset, an outage), which are not OSErrors
            if wait is None:
                raise stopped(url, partial, err, by_hand, resumable) from None
            log.warning("The download of %s stopped (%s); resuming in %d s", url, first_line(err), wait)
            time.sleep(wait)


def stopped(url: str, partial: Path, err: BaseException, by_hand: str, resumable: bool) -> DownloadError:
    kept = partial.stat().st_size if partial.is_file() else 0
    if kept and not resumable:
        partial.unlink()  # no checksum nor version to tell the next run's file is the same
    resume = f"{size_of(kept)} kept in {partial}: run again to resume" if kept and resumable else "run again to retry"
    return DownloadError(
        f"the download of {url} stopped ({first_line(err)}); {resume}, or without network access download "
        f"it elsewhere and {by_hand}"
    )
