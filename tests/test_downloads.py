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
import shutil
import socket
import struct
import threading
import zipfile
from pathlib import Path

import pytest
from conftest import zip_dataset

from eurosat_finetune.data.datamodule import EuroSATDataModule
from eurosat_finetune.data.loaders import LoaderOptions
from eurosat_finetune.data.patches.source import LOCK_NAME, DownloadOptions
from eurosat_finetune.errors import DownloadError, OutputError
from eurosat_finetune.tools.download import partial_download_path

MB = 1 << 20


class ArchiveServer:
    """Serves ``payload`` at ``/EuroSAT_RGB.zip``. ``drop_after`` cuts the next GET short after that many
    bytes (a dropped connection); ``refuse`` answers 503 to every GET (a network that stays down)."""

    def __init__(self, payload: bytes, ranges: bool = True) -> None:
        self.payload, self.ranges = payload, ranges
        self.head_size: int | None = None  # what HEAD announces, if not the payload's size
        self.head_status = 200  # 405: a server that refuses HEAD (as signed URLs do)
        self.etag: str | None = None  # the file's version, as Zenodo's ETag gives it
        self.drop_after: int | None = None
        self.reset = False  # the drop is a reset (RST), not a clean close
        self.refuse_after_drop = False
        self.refuse = False
        self.gets: list[tuple[int, int]] = []  # per GET answered: the first byte sent, how many were sent
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                if self.path != "/EuroSAT_RGB.zip" or owner.head_status != 200:
                    self.send_error(404 if self.path != "/EuroSAT_RGB.zip" else owner.head_status)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(owner.head_size or len(owner.payload)))
                if owner.ranges:
                    self.send_header("Accept-Ranges", "bytes")
                if owner.etag:
                    self.send_header("ETag", owner.etag)
                self.end_headers()

            def do_GET(self) -> None:
                owner.answer(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/EuroSAT_RGB.zip"

    def answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.path != "/EuroSAT_RGB.zip":
            handler.send_error(404)
            return
        if self.refuse:
            handler.send_error(503)
            return
        asked = re.fullmatch(r"bytes=(\d+)-", handler.headers.get("Range", ""))
        start = int(asked[1]) if asked and self.ranges else 0
        if start >= len(self.payload):  # nothing left to send: 416, with the file's size
            handler.send_response(416)
            handler.send_header("Content-Range", f"bytes */{len(self.payload)}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            self.gets.append((start, 0))
            return
        body = self.payload[start:]
        handler.send_response(206 if start else 200)
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if self.drop_after is not None:  # promise the whole body, send part of it, hang up (HTTP/1.0)
            body, self.drop_after, self.refuse = body[: self.drop_after], None, self.refuse_after_drop
            if self.reset:  # close with RST: the client reads "connection reset by peer"
                handler.wfile.write(body)
                handler.wfile.flush()
                handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.gets.append((start, len(body)))
                return
        handler.wfile.write(body)
        self.gets.append((start, len(body)))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")  # bytes: no test can change them
def archive(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The sample dataset zipped, with 24 MB of incompressible bytes stored beside its class folders."""
    path = zip_dataset(sample_root, tmp_path_factory.mktemp("served") / "EuroSAT_RGB.zip")
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
    return downloading(root, server.url, md5)


def downloading(root: Path, url: str, md5: str | None = None) -> EuroSATDataModule:
    """A datamodule that downloads ``url`` into ``root`` (checked against ``md5``, if given)."""
    return EuroSATDataModule(root=root, download=DownloadOptions(True, url, md5), loader=LoaderOptions(num_workers=0))


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


@pytest.mark.slow  # the full suite; the quick one keeps the interrupted download
def test_a_dropped_connection_is_resumed_within_the_run(tmp_path: Path, server: ArchiveServer, archive: bytes) -> None:
    root = tmp_path / "data"
    server.drop_after = 12 * MB
    datamodule(root, server, archive).prepare_data()
    assert server.gets == [(0, 12 * MB), (10 * MB, len(archive) - 10 * MB)]
    extracted_once(root, archive)


@pytest.mark.slow  # the full suite; the quick one keeps the interrupted download
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


@pytest.mark.slow  # the full suite; the quick one keeps the interrupted download
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
    assert (
        f"not {md5}; the file was removed; it was resumed from an earlier run's part: run again to download it whole"
        in message
    )
    assert sorted(p.name for p in root.iterdir()) == [LOCK_NAME]  # nothing half-good is kept
    datamodule(root, server, archive).prepare_data()
    assert server.gets[-1] == (0, len(archive))
    extracted_once(root, archive)


def test_a_download_the_disk_cannot_hold_is_refused_before_it_starts(
    tmp_path: Path, server: ArchiveServer, archive: bytes
) -> None:
    server.head_size = 10**15  # a server announcing a petabyte
    root = tmp_path / "data"
    with pytest.raises(OutputError) as err:
        datamodule(root, server, archive).prepare_data()
    message = str(err.value)
    assert "\n" not in message and f"downloading {server.url} needs 1.00PB in {root}, which has " in message
    assert message.endswith("free; free some space there or choose another folder")
    assert server.gets == [] and sorted(p.name for p in root.iterdir()) == [LOCK_NAME]


@pytest.mark.slow  # the full suite; the quick one keeps the interrupted download
def test_a_reset_connection_is_resumed_within_the_run(
    tmp_path: Path, server: ArchiveServer, archive: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A reset (RST) mid-way ends huggingface_hub's http_get; this package resumes it after a second."""
    server.drop_after, server.reset = 12 * MB, True
    root = tmp_path / "data"
    datamodule(root, server, archive).prepare_data()
    assert server.gets[0] == (0, 12 * MB) and len(server.gets) == 2
    first, sent = server.gets[1]
    assert first in (0, 10 * MB) and first + sent == len(archive)  # from what reached the disk
    assert any("connection reset by peer); resuming in 1 s" in r.getMessage().lower() for r in caplog.records)
    extracted_once(root, archive)


@pytest.mark.slow  # the full suite; the quick one keeps the interrupted download
def test_a_complete_part_is_not_fetched_again_where_head_is_refused(
    tmp_path: Path, server: ArchiveServer, archive: bytes
) -> None:
    """A run killed while checking a finished download left the whole file as its part; the server
    refuses HEAD, so its size is unknown: the range request gets 416, and the checksum decides."""
    server.head_status = 405
    root = tmp_path / "data"
    root.mkdir()
    partial_download_path(root / "EuroSAT_RGB.zip", server.url).write_bytes(archive)
    datamodule(root, server, archive).prepare_data()
    assert server.gets == [(len(archive), 0)]
    extracted_once(root, archive)
    # a part longer than the file: started again
    shutil.rmtree(root)
    root.mkdir()
    partial_download_path(root / "EuroSAT_RGB.zip", server.url).write_bytes(archive + b"more")
    datamodule(root, server, archive).prepare_data()
    assert server.gets[1:] == [(len(archive) + 4, 0), (0, len(archive))]
    extracted_once(root, archive)


@pytest.mark.slow  # the full suite; the quick one keeps the interrupted download
def test_a_changed_file_or_no_checksum_starts_over(tmp_path: Path, server: ArchiveServer, archive: bytes) -> None:
    """The part of an earlier version of the file (the server's ETag changed) is not resumed; nor is a part
    that no checksum or version could vouch for."""
    root = tmp_path / "data"
    server.etag = '"v1"'
    server.drop_after, server.refuse_after_drop = 12 * MB, True
    with pytest.raises(DownloadError):
        datamodule(root, server, archive).prepare_data()
    server.refuse, server.etag = False, '"v2"'
    datamodule(root, server, archive).prepare_data()
    assert server.gets[1:] == [(0, len(archive))]
    extracted_once(root, archive)

    other = tmp_path / "other"
    server.etag = None
    server.drop_after, server.refuse_after_drop = 12 * MB, True
    unchecked = downloading(other, server.url)
    with pytest.raises(DownloadError, match=r"stopped .*; run again to retry"):
        unchecked.prepare_data()
    server.refuse = False
    downloading(other, server.url).prepare_data()
    assert server.gets[-1] == (0, len(archive))
    extracted_once(other, archive)


def test_a_local_file_url_is_copied(tmp_path: Path, archive: bytes) -> None:
    served = tmp_path / "served" / "EuroSAT_RGB.zip"
    served.parent.mkdir()
    served.write_bytes(archive)
    root = tmp_path / "data"
    md5 = hashlib.md5(archive).hexdigest()
    downloading(root, served.as_uri(), md5).prepare_data()
    extracted_once(root, archive)
    missing = (tmp_path / "nowhere.zip").as_uri()
    with pytest.raises(DownloadError, match=f"data.download.url='{missing}': no such file; give the url or path"):
        downloading(tmp_path / "d2", missing).prepare_data()


def test_what_the_server_refuses_is_one_line(
    tmp_path: Path, server: ArchiveServer, archive: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.url.replace("EuroSAT_RGB.zip", "EuroSAT_MS.zip")
    with pytest.raises(DownloadError) as err:
        downloading(tmp_path / "data", url).prepare_data()
    assert str(err.value).startswith(f"the server answered 404 for data.download.url='{url}' (")
    assert str(err.value).endswith("); check the url") and "\n" not in str(err.value)
    # offline mode (here set by TRANSFORMERS_OFFLINE, which huggingface_hub also reads) stops it before a request
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(
        DownloadError, match=r"^TRANSFORMERS_OFFLINE is set, which stops downloads through huggingface_h"
    ):
        datamodule(tmp_path / "offline", server, archive).prepare_data()
    assert server.gets == []


def test_an_archive_the_disk_cannot_hold_extracted_is_kept(tmp_path: Path, sample_root: Path, serve_dir) -> None:
    """Its listing promises 300 members of 4 GB each: refused before extracting, and the download kept."""
    path = zip_dataset(sample_root, tmp_path / "served" / "EuroSAT_RGB.zip")
    with zipfile.ZipFile(path, "a") as zf:
        for i in range(300):
            zf.writestr(f"EuroSAT_RGB/.big{i}", b"x", compress_type=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    start = data.index(b"PK\x01\x02")  # the central directory: each entry's uncompressed size at offset 24
    for entry in [m.start() for m in re.finditer(b"PK\x01\x02", bytes(data[start:]))]:
        name_length = struct.unpack_from("<H", data, start + entry + 28)[0]
        if bytes(data[start + entry + 46 : start + entry + 46 + name_length]).startswith(b"EuroSAT_RGB/.big"):
            struct.pack_into("<I", data, start + entry + 24, 0xFFFFFFF0)
    path.write_bytes(data)
    root = tmp_path / "data"
    url = f"{serve_dir(path.parent)}/EuroSAT_RGB.zip"
    with pytest.raises(OutputError, match=rf"^extracting {re.escape(str(root))}/EuroSAT_RGB.zip needs 1.29TB in "):
        downloading(root, url, hashlib.md5(data).hexdigest()).prepare_data()
    assert (root / "EuroSAT_RGB.zip").read_bytes() == data  # kept: no second 2 GB download after freeing space
