"""Download, verify and extract a dataset archive without ever leaving half-written files behind.

The archive is streamed to a temporary file beside its destination and renamed into place only once
it is complete and its md5 matches; extraction goes to a temporary folder that is renamed into place
only once every member has been written. An interrupted or failed run therefore leaves either
nothing or a complete result. The temporary names are fixed, so a re-run (which holds the dataset
lock, see :mod:`.made_once`) replaces what a killed run left instead of piling up more.
"""

import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from eurosat_finetune.errors import DownloadError

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20


def md5sum(path: Path) -> str:
    """Return the hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def partial_download_path(dest: Path) -> Path:
    """The temporary file a download of ``dest`` streams into."""
    return dest.with_name(f".{dest.name}.part")


def download_file(url: str, dest: Path, md5: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, checking its md5 when one is given.

    ``dest`` appears only when the download is complete and verified; on any failure the partial
    file is removed and a :class:`DownloadError` names the url, the file and the expected checksum.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_download_path(dest)
    digest = hashlib.md5()
    try:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            expected_size = response.headers.get("Content-Length")
            size = 0
            for chunk in iter(lambda: response.read(CHUNK_SIZE), b""):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        if expected_size is not None and size != int(expected_size):
            raise DownloadError(f"download of {url} stopped after {size} of {expected_size} bytes; run again to retry")
        actual = digest.hexdigest()
        if md5 is not None and actual != md5.lower():
            raise DownloadError(
                f"md5 of {url} is {actual}, expected {md5}; the file was removed. Check data.url and "
                "data.md5 (set data.md5 to null to skip the check)"
            )
        if md5 is None:
            log.warning("Downloaded %s without a checksum to verify; its md5 is %s", url, actual)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(
            f"could not download {url} to {dest}: {err}. Without network access, download the file "
            f"elsewhere and place it at {dest} (or extract it under {dest.parent})"
        ) from err
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def extract_zip(archive: Path, dest_dir: Path) -> list[Path]:
    """Extract ``archive`` into ``dest_dir`` atomically; return the top-level paths it created.

    Members are written to a temporary folder inside ``dest_dir`` first and moved into place at the
    end, so a corrupt archive leaves no half-extracted folder. Existing paths are never overwritten.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = dest_dir / f".{archive.stem}.extracting"
    shutil.rmtree(tmp_dir, ignore_errors=True)  # left by a killed extraction
    tmp_dir.mkdir()
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise DownloadError(f"{archive} is corrupt (member {bad} fails its CRC check)")
                zf.extractall(tmp_dir)
        except zipfile.BadZipFile as err:
            raise DownloadError(f"{archive} is not a valid zip file ({err}); delete it and download it again") from err
        created = []
        for child in sorted(tmp_dir.iterdir()):
            target = dest_dir / child.name
            if target.exists():
                raise DownloadError(
                    f"cannot extract {archive}: {target} already exists; move it away or point data.root at it"
                )
            created.append(target)
        for child, target in zip(sorted(tmp_dir.iterdir()), created, strict=True):
            os.replace(child, target)
        return created
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
