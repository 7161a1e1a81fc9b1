"""A STAC API on 127.0.0.1, as the catalogues serve one: the landing page (conformance, ``search`` link),
collections, items, a GET item search (collections, bbox, datetime, ids, limit; pages linked by ``next``),
and the files the items' assets point at, with HTTP range requests (206 Partial Content), every byte of
file sent counted."""

import datetime as dt
import json
import re
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/conf/1.0/core",
    "http://www.opengis.net/spec/ogcapi-features-1/conf/1.0/geojson",
]
RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
FILES = "files"  # the URL path under which the files folder is served
BROKEN_AFTER = 16384  # GDAL's first read of a file (its header, the tile index): a broken file still opens


def _time(text: str) -> dt.datetime | None:
    return None if text in ("", "..") else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _in_interval(item: dict[str, Any], interval: str) -> bool:
    when = _time(item["properties"]["datetime"])
    start, _, end = interval.partition("/")
    first, last = _time(start), _time(end if "/" in interval else start)
    return (first is None or when >= first) and (last is None or when <= last)


def _meets(item: dict[str, Any], bbox: list[float]) -> bool:
    west, south, east, north = item["bbox"]
    return west <= bbox[2] and bbox[0] <= east and south <= bbox[3] and bbox[1] <= north


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet when a client hangs up (GDAL's curl closes kept-alive connections as it likes)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StacServer:
    """Serves ``files`` (a folder) under ``/files/`` and the items added with :meth:`add_item`. ``url`` is its
    root; :attr:`bytes_sent` counts the file bytes sent per path, :attr:`ranges` lists them, :attr:`partial`
    counts the 206 answers, :attr:`api_requests` lists the API's paths asked for; the next :attr:`busy` of
    those answer 503. ``whole_file_reads=False`` reads only the range asked for from disk (the same
    bytes sent): full-size COGs, hundreds of MB each, read whole for every range slow the server down."""

    def __init__(self, files: Path, whole_file_reads: bool = True) -> None:
        self.files = Path(files)
        self.whole_file_reads = whole_file_reads
        self.collections: dict[str, dict[str, Any]] = {}
        self.items: dict[str, list[dict[str, Any]]] = {}
        self.bytes_sent: Counter[str] = Counter()
        self.ranges: list[tuple[str, int, int]] = []  # every file range sent: path, first and last byte
        self.broken: set[str] = set()  # files (paths under ``files``) whose bytes past their header answer 500
        self.busy = 0  # how many of the next API requests answer 503, as a busy catalogue does
        self.api_requests: list[str] = []  # every API path asked for (not the files')
        self.partial = 0
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"stac": self})
        self.server = _Server(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()  # quick to shut down

    def file_url(self, relative: str) -> str:
        return f"{self.url}/{FILES}/{relative}"

    def add_item(self, item: dict[str, Any]) -> str:
        """Publish ``item`` in its collection (made on first use); returns the item's URL."""
        collection = item["collection"]
        if collection not in self.collections:
            self.collections[collection] = self.collection(collection)
            self.items[collection] = []
        url = f"{self.url}/collections/{collection}/items/{item['id']}"
        item["links"] = [link for link in item.get("links", []) if link["rel"] not in ("self", "root", "collection")]
        item["links"] += [
            {"rel": "self", "href": url, "type": "application/geo+json"},
            {"rel": "root", "href": f"{self.url}/", "type": "application/json"},
            {"rel": "collection", "href": f"{self.url}/collections/{collection}", "type": "application/json"},
        ]
        self.items[collection].append(item)
        return url

    def collection(self, name: str) -> dict[str, Any]:
        return {
            "type": "Collection",
            "id": name,
            "stac_version": "1.0.0",
            "description": f"{name}: synthetic Sentinel-2 L2A scenes, not real data",
            "license": "proprietary",
            "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
            "links": [
                {"rel": "self", "href": f"{self.url}/collections/{name}"},
                {"rel": "root", "href": f"{self.url}/"},
                {"rel": "items", "href": f"{self.url}/collections/{name}/items", "type": "application/geo+json"},
            ],
        }

    def landing(self) -> dict[str, Any]:
        return {
            "type": "Catalog",
            "id": "fake-stac-api",
            "stac_version": "1.0.0",
            "description": "A STAC API of synthetic Sentinel-2 scenes for the tests",
            "conformsTo": CONFORMANCE,
            "links": [
                {"rel": "self", "href": f"{self.url}/", "type": "application/json"},
                {"rel": "root", "href": f"{self.url}/", "type": "application/json"},
                {"rel": "conformance", "href": f"{self.url}/conformance", "type": "application/json"},
                {"rel": "data", "href": f"{self.url}/collections", "type": "application/json"},
                {"rel": "search", "href": f"{self.url}/search", "type": "application/geo+json", "method": "GET"},
                *({"rel": "child", "href": f"{self.url}/collections/{name}"} for name in self.collections),
            ],
        }

    def search(self, query: dict[str, str]) -> dict[str, Any]:
        """A page of the items matching ``query``, with a ``next`` link while more are left."""
        wanted = query["collections"].split(",") if "collections" in query else list(self.items)
        found = [item for name in wanted for item in self.items.get(name, [])]
        if "ids" in query:
            found = [item for item in found if item["id"] in query["ids"].split(",")]
        if "bbox" in query:
            found = [item for item in found if _meets(item, [float(v) for v in query["bbox"].split(",")])]
        if "datetime" in query:
            found = [item for item in found if _in_interval(item, query["datetime"])]
        limit, start = int(query.get("limit", 10)), int(query.get("token", 0))
        page = found[start : start + limit]
        links = [{"rel": "root", "href": f"{self.url}/"}]
        if start + limit < len(found):
            rest = {**query, "token": str(start + limit)}
            links.append({"rel": "next", "href": f"{self.url}/search?" + "&".join(f"{k}={v}" for k, v in rest.items())})
        return {"type": "FeatureCollection", "features": page, "links": links, "numberReturned": len(page)}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    stac: StacServer
    protocol_version = "HTTP/1.1"  # keep-alive, as GDAL's curl expects of a COG server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        stac = self.stac
        if path.startswith(f"/{FILES}/"):
            return self.send_file(path.removeprefix(f"/{FILES}/"), head)
        segments = path.split("/")[1:]
        with stac.lock:
            stac.api_requests.append(self.path)
            busy, stac.busy = stac.busy > 0, max(0, stac.busy - 1)
        if busy:
            return self.send_json({"code": "ServiceUnavailable", "description": "busy"}, 503, head)
        answer: Any = None
        if path == "":
            answer = stac.landing()
        elif path == "/conformance":
            answer = {"conformsTo": CONFORMANCE}
        elif path == "/collections":
            answer = {"collections": list(stac.collections.values()), "links": []}
        elif path == "/search":
            answer = stac.search(query)
        elif len(segments) == 2 and segments[0] == "collections":
            answer = stac.collections.get(segments[1])
        elif len(segments) == 4 and segments[0] == "collections" and segments[2] == "items":
            answer = next((item for item in stac.items.get(segments[1], []) if item["id"] == segments[3]), None)
        if answer is None:
            return self.send_json({"code": "NotFound", "description": f"{path} not found"}, 404, head)
        media = "application/geo+json" if path == "/search" or "items" in segments else "application/json"
        self.send_json(answer, 200, head, media)

    def send_json(self, answer: Any, status: int, head: bool, media: str = "application/json") -> None:
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def send_file(self, relative: str, head: bool) -> None:
        """The file, whole (200) or the one byte range asked for (206); several ranges get the whole file."""
        path = (self.stac.files / relative).resolve()
        if self.stac.files.resolve() not in path.parents or not path.is_file():
            return self.send_json({"code": "NotFound", "description": relative}, 404, head)
        data = path.read_bytes() if self.stac.whole_file_reads else None
        size = len(data) if data is not None else path.stat().st_size
        start, end = 0, size - 1
        match = RANGE.match(self.headers.get("Range", "").strip())
        if match and match.group(1) + match.group(2):
            first, last = match.group(1), match.group(2)
            start, end = (int(first), min(int(last or size - 1), size - 1)) if first else (size - int(last), size - 1)
            if relative in self.stac.broken and start >= BROKEN_AFTER:  # its header reads, its pixels do not
                return self.send_json({"code": "ServerError", "description": "broken for the test"}, 500, head)
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        self.send_response(206 if match else 200)
        self.send_header("Content-Type", "image/tiff" if path.suffix == ".tif" else "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if match:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not head:
            if data is None:
                with path.open("rb") as file:
                    file.seek(start)
                    self.wfile.write(file.read(end - start + 1))
            else:
                self.wfile.write(data[start : end + 1])
            with self.stac.lock:
                self.stac.bytes_sent[relative] += end - start + 1
                self.stac.ranges.append((relative, start, end))
                self.stac.partial += bool(match)
