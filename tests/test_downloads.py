"""Downloads that survive a dropped connection: resumed by HTTP range, restarted where the server has
no ranges, checked over the whole file, refused before they start where the disk is too small.

The archive is served from 127.0.0.1 by a handler that does what Zenodo does (HEAD, byte ranges) or
ignores ranges, and can hang up in the middle of a GET. It is over 10 MB because huggingface_hub's
downloader writes in 10 MB chunks: a connection dropped at 12 MB keeps the first 10.
"""

import hashlib
import http.server
import os
import re
import threading
import zipfile
from pathlib import Path

import pytest
from conftest import zip_dataset

from eurosat_finetune.data.datamodule import EuroSATDataModule
from eurosat_finetune.data.download import partial_download_path
from eurosat_finetune.data.source import LOCK_NAME
from eurosat_finetune.errors import DownloadError

MB = 1 << 20


class ArchiveServer:
    """Serves ``payload`` at ``/EuroSAT_RGB.zip``. ``drop_after`` cuts the next GET short after that many
    bytes (a dropped connection); ``refuse`` answers 503 to every GET (a network that stays down)."""

    def __init__(self, payload: bytes, ranges: bool = True) -> None:
        self.payload, self.ranges = payload, ranges
        self.head_size: int | None = None  # what HEAD announces, if not the payload's size
        self.drop_after: int | None = None
        self.refuse_after_drop = False
        self.refuse = False
        self.gets: list[tuple[int, int]] = []  # per GET answered: the first byte sent, how many were sent
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(owner.head_size or len(owner.payload)))
                if owner.ranges:
                    self.send_header("Accept-Ranges", "bytes")
                self.end_headers()

            def do_GET(self) -> None:
                owner.answer(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/EuroSAT_RGB.zip"

    def answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        if self.refuse:
            handler.send_error(503)
            return
        asked = re.fullmatch(r"bytes=(\d+)-", handler.headers.get("Range", ""))
        start = int(asked[1]) if asked and self.ranges else 0
        body = self.payload[start:]
        handler.send_response(206 if start else 200)
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if self.drop_after is not None:  # promise the whole body, send part of it, hang up (HTTP/1.0)
            body, self.drop_after, self.refuse = body[: self.drop_after], None, self.refuse_after_drop
        handler.wfile.write(body)
        self.gets.append((start, len(body)))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive(sample_root: Path, tmp_path: Path) -> bytes:
    """The sample dataset zipped, with 24 MB of incompressible bytes stored beside its class folders."""
    path = zip_dataset(sample_root, tmp_path / "served" / "EuroSAT_RGB.zip")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("EuroSAT_RGB/.padding", os.urandom(24 * MB), compress_type=zipfile.ZIP_STORED)
    return path.read_bytes()


@pytest.fixture
def server(archive: bytes) -> ArchiveServer:
    server = ArchiveServer(archive)
    yield server
    server.stop()


def datamodule(root: Path, server: ArchiveServer, archive: bytes, md5: str | None = None) -> EuroSATDataModule:
    md5 = md5 or hashlib.md5(archive).hexdigest()
    return EuroSATDataModule(root=root, download=True, url=server.url, md5=md5, num_workers=0)


def interrupted_first_run(root: Path, server: ArchiveServer, archive: bytes) -> Path:
    """A first run whose connection drops at 12 MB and whose retries then find the server down: one line,
    and the part that arrived kept for the next run."""
    server.drop_after, server.refuse_after_drop = 12 * MB, True
    with pytest.raises(DownloadError) as err:
        datamodule(root, server, archive).prepare_data()
    partial = partial_download_path(root / "EuroSAT_RGB.zip", server.url)
    message = str(err.value)
    assert "\n" not in message and f"the download of {server.url} stopped" in message
    assert f"10.5MB kept in {partial}: run again to resume" in message
    assert partial.stat().st_size == 10 * MB and partial.read_bytes() == archive[: 10 * MB]
    assert not (root / "EuroSAT_RGB.zip").exists() and not (root / "EuroSAT_RGB").exists()
    server.refuse = False
    return partial


def extracted_once(root: Path, archive: bytes) -> None:
    assert (root / "EuroSAT_RGB.zip").read_bytes() == archive
    assert len(list((root / "EuroSAT_RGB").rglob("*.jpg"))) == 200
    assert sorted(p.name for p in root.iterdir()) == [LOCK_NAME, "EuroSAT_RGB", "EuroSAT_RGB.zip"]


def test_an_interrupted_download_resumes_where_it_stopped(
    tmp_path: Path, server: ArchiveServer, archive: bytes
) -> None:
    root = tmp_path / "data"
    interrupted_first_run(root, server, archive)
    assert server.gets == [(0, 12 * MB)]
    datamodule(root, server, archive).prepare_data()
    assert server.gets[1:] == [(10 * MB, len(archive) - 10 * MB)]  # only what was missing
    extracted_once(root, archive)
    datamodule(root, server, archive).prepare_data()  # found: nothing fetched or extracted again
    assert len(server.gets) == 2


def test_a_dropped_connection_is_resumed_within_the_run(tmp_path: Path, server: ArchiveServer, archive: bytes) -> None:
    root = tmp_path / "data"
    server.drop_after = 12 * MB
    datamodule(root, server, archive).prepare_data()
    assert server.gets == [(0, 12 * MB), (10 * MB, len(archive) - 10 * MB)]
    extracted_once(root, archive)


def test_a_server_without_ranges_starts_the_download_again(tmp_path: Path, archive: bytes) -> None:
    server = ArchiveServer(archive, ranges=False)
    try:
        root = tmp_path / "data"
        interrupted_first_run(root, server, archive)
        datamodule(root, server, archive).prepare_data()  # asks for the rest, gets the whole file
        assert server.gets[1:] == [(0, len(archive))]
        extracted_once(root, archive)
    finally:
        server.stop()


def test_a_corrupted_resume_is_caught_by_the_checksum(tmp_path: Path, server: ArchiveServer, archive: bytes) -> None:
    root = tmp_path / "data"
    partial = interrupted_first_run(root, server, archive)
    with partial.open("r+b") as file:  # as a disk error, or another file's bytes under this name, would
        file.write(b"\0" * 4096)
    md5 = hashlib.md5(archive).hexdigest()
    with pytest.raises(DownloadError) as err:
        datamodule(root, server, archive).prepare_data()
    message = str(err.value)
    assert "\n" not in message and f"the md5 of the download of {server.url} is " in message
    assert f"not {md5}; the file was removed; check data.url and data.md5" in message
    assert sorted(p.name for p in root.iterdir()) == [LOCK_NAME]  # nothing half-good is kept
    datamodule(root, server, archive).prepare_data()
    assert server.gets[-1] == (0, len(archive))
    extracted_once(root, archive)


def test_a_download_the_disk_cannot_hold_is_refused_before_it_starts(
    tmp_path: Path, server: ArchiveServer, archive: bytes
) -> None:
    server.head_size = 10**15  # a server announcing a petabyte
    root = tmp_path / "data"
    with pytest.raises(DownloadError) as err:
        datamodule(root, server, archive).prepare_data()
    message = str(err.value)
    assert "\n" not in message and f"downloading {server.url} needs 1.00PB in {root}, which has " in message
    assert message.endswith("free; free some space there or choose another folder")
    assert server.gets == [] and sorted(p.name for p in root.iterdir()) == [LOCK_NAME]
