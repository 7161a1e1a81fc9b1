"""STAC items as ``data.predict_root``: an item (URL or JSON file), an ItemCollection JSON file, or a STAC API
item search in its GET form, ``<root>/search?collections=...&bbox=w,s,e,n&datetime=a/b`` (and ``ids``,
``limit``). Each item is one scene; a search's bbox is the area mapped.

Read through pystac (items, item collections) and pystac-client (searches), the optional ``stac`` extra;
pixels are read later by GDAL, whose HTTP settings for cloud-optimised GeoTIFFs are set here as defaults
(what the user set is kept). The Planetary Computer's files refuse unsigned requests: its items (recognised
by the host name of the URL, or of a saved item's own link) are signed with its ``planetary-computer``
package, the optional ``planetary-computer`` extra; other catalogues are read unsigned.
"""

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from eurosat_finetune.errors import CatalogueError, DataNotFoundError, first_line
from eurosat_finetune.tools.progress import progress_bar

if TYPE_CHECKING:
    import pystac

log = logging.getLogger(__name__)

INSTALL = "pip install 'eurosat-finetune[stac]'"
PLANETARY_COMPUTER = "planetarycomputer.microsoft.com"  # its STAC API's host; its files are in Azure blobs
INSTALL_SIGNING = "pip install 'eurosat-finetune[planetary-computer]'"
SEARCH_PARAMETERS = ("collections", "bbox", "datetime", "ids", "limit")
# GDAL's settings for reading COGs over HTTP: no directory listing on open (one request, not a crawl of
# the bucket), consecutive ranges in one request, and retries of 429/5xx answers
HTTP_DEFAULTS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    # /vsicurl/ reads ahead (the next tile row of a band read row by row); its cache, 16 MB by default for every
    # file of the process, lost that to the other bands and items before it was read, which fetched it again
    # (measured by tests/test_stac.py::test_a_search_fetches_only_the_tiles_of_its_bbox: 1.45 times the bytes of
    # the area's tiles for a three-date composite, 1.28 with this cache)
    "CPL_VSIL_CURL_CACHE_SIZE": str(256 * 2**20),
    # a server that accepts and then sends nothing, or almost nothing for a minute: fail rather than wait for ever
    "GDAL_HTTP_CONNECTTIMEOUT": "30",
    "GDAL_HTTP_LOW_SPEED_TIME": "60",
    "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
}
HTTP_PHRASES = {status.value for status in HTTPStatus}
HTTP_TIMEOUT_S = (30.0, 60.0)  # items and searches: connecting, then each read (requests' timeout)
HTTP_RETRIES = 3  # items and searches: retries of a refused connection or a busy catalogue (429, 5xx), backing off

BBox = tuple[float, float, float, float]


def is_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.lower().startswith(("http://", "https://"))


def as_location(root: str | Path) -> str | Path:
    """``data.predict_root`` as given: a URL stays a string (a ``Path`` would fold its ``//``), the rest a path."""
    return root if is_url(root) else Path(root)


def is_stac(root: str | Path) -> bool:
    """Whether ``root`` names STAC items: a URL, or a ``.json`` file (an item or an item collection)."""
    return is_url(root) or (Path(root).suffix.lower() == ".json" and Path(root).is_file())


def stac_libraries() -> tuple[ModuleType, ModuleType]:
    """pystac and pystac_client, or a one-line error saying how to install them."""
    try:
        import pystac
        import pystac_client
    except ImportError:
        raise CatalogueError(f"reading STAC items needs pystac and pystac-client: {INSTALL}") from None
    return pystac, pystac_client


@dataclass
class StacItems:
    """The items a ``data.predict_root`` names, and the area (a search's bbox, EPSG:4326) to map, if any."""

    location: str
    items: list["pystac.Item"]
    bbox: BBox | None = None


def is_planetary_computer(url: str | None) -> bool:
    host = urlsplit(url or "").hostname or ""
    return host == PLANETARY_COMPUTER or host.endswith(f".{PLANETARY_COMPUTER}")


def planetary_computer_signer(location: str) -> Callable[[Any], Any]:
    """The ``planetary-computer`` package's ``sign_inplace``: pystac-client's ``modifier`` for a search, and
    what signs an item's asset hrefs (a token per blob container, fetched once and kept until it expires).
    Without the package, a one-line error naming ``location`` and how to install it."""
    try:
        import planetary_computer
    except ImportError:
        raise CatalogueError(
            f"{location}: the Planetary Computer's files are read with signed URLs, which its package makes: "
            f"{INSTALL_SIGNING}"
        ) from None
    return planetary_computer.sign_inplace


def stac_io() -> "pystac.StacIO":
    """pystac's reader with a timeout and retries (pystac-client's, on requests): its default has no timeout,
    so a catalogue that accepts and never answers would hang the command."""
    from pystac_client.stac_api_io import StacApiIO
    from urllib3.util.retry import Retry

    # a silent catalogue is given one more read, not three: each waits HTTP_TIMEOUT_S[1]
    retry = Retry(
        total=HTTP_RETRIES,
        read=min(1, HTTP_RETRIES),
        backoff_factor=1,
        allowed_methods=None,
        status_forcelist=(429, 500, 502, 503, 504),
        raise_on_status=False,
    )
    return StacApiIO(timeout=HTTP_TIMEOUT_S, max_retries=retry)


def signed(found: "StacItems") -> "StacItems":
    """``found`` with the Planetary Computer's items signed in place (by the location's host, or each item's own
    link, as a saved item collection keeps); the others as they are."""
    for item in found.items:
        if is_planetary_computer(found.location) or is_planetary_computer(item.get_self_href()):
            planetary_computer_signer(found.location)(item)
    return found


def load_items(root: str | Path) -> StacItems:
    """The items at ``root`` (see the module's docstring). A URL that does not answer, or answers with
    an error, is a one-line error naming it; so is a search that finds nothing."""
    location = str(root)
    pystac, _ = stac_libraries()
    for variable, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(variable, value)  # read by GDAL here and in the DataLoader workers started later
    if is_url(location) and urlsplit(location).path.rstrip("/").endswith("/search"):
        found = search(location)
    else:
        try:
            found = StacItems(location, [pystac.Item.from_file(location, stac_io=stac_io())])
        except pystac.STACTypeError:  # not an item: an item collection (as ``stac-client search --save`` writes)
            found = None  # tried below, outside this handler: its errors are its own, not this one's
        except Exception as err:  # pystac raises bare Exceptions for HTTP errors: any failure is the location's
            raise CatalogueError(unreadable(location, err)) from None
        if found is None:
            try:
                found = StacItems(location, list(pystac.ItemCollection.from_file(location, stac_io=stac_io())))
            except (pystac.STACTypeError, KeyError, TypeError, AttributeError):
                raise CatalogueError(f"{location} is neither a STAC Item nor an ItemCollection") from None
            except Exception as err:
                raise CatalogueError(unreadable(location, err)) from None
        found = signed(found)
    if not found.items:
        raise DataNotFoundError(f"data.predict_root={location!r} holds no STAC items; widen the search or the file")
    return found


def unreadable(location: str, err: BaseException) -> str:
    """One line naming ``location``, what went wrong (the deepest cause: the HTTP status, the refused
    connection) and what to do."""
    chain = [err]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)  # type: ignore[arg-type]
    # an HTTP status, as pystac-client's APIError keeps it (its message is the body), else the deepest cause
    status = next((e.status_code for e in chain if isinstance(getattr(e, "status_code", None), int)), None)
    cause = f"HTTP Error {status}: {HTTPStatus(status).phrase}" if status in HTTP_PHRASES else first_line(chain[-1])
    what = "check the URL and that the catalogue is up" if is_url(location) else "check the file"
    return f"cannot read the STAC item(s) at {location} ({cause}); {what}"


def search_parameters(url: str) -> tuple[str, dict[str, Any]]:
    """The API root and pystac-client search arguments of a GET item-search URL; ``limit`` is also the
    most items mapped."""
    parts = urlsplit(url)
    root = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/").removesuffix("/search"), "", ""))
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - set(SEARCH_PARAMETERS))
    if unknown:
        raise CatalogueError(
            f"{url}: unknown search parameter(s) {', '.join(unknown)}; give {', '.join(SEARCH_PARAMETERS)}"
        )
    arguments: dict[str, Any] = {}
    for key in ("collections", "ids"):
        if key in query:
            arguments[key] = [value for value in query[key].split(",") if value]
    try:
        if "bbox" in query:
            bbox = tuple(float(value) for value in query["bbox"].split(","))
            if len(bbox) != 4:
                raise ValueError
            arguments["bbox"] = bbox
        if "limit" in query:
            arguments["limit"] = arguments["max_items"] = int(query["limit"])
    except ValueError:
        raise CatalogueError(f"{url}: bbox is west,south,east,north in degrees and limit a whole number") from None
    if "datetime" in query:
        arguments["datetime"] = query["datetime"]
    return root, arguments


def search(url: str) -> StacItems:
    """The items of a GET item-search URL, through pystac-client, with its bbox as the area mapped."""
    _, pystac_client = stac_libraries()
    root, arguments = search_parameters(url)
    modifier = planetary_computer_signer(url) if is_planetary_computer(url) else None
    try:
        client = pystac_client.Client.open(root, modifier=modifier, stac_io=stac_io(), timeout=HTTP_TIMEOUT_S)
        items = []
        with progress_bar(None, f"Searching {root}", " items") as progress:  # shown when it takes a while
            for item in client.search(method="GET", **arguments).items():  # page by page
                items.append(item)
                progress.update()
    except Exception as err:  # requests' and pystac-client's errors alike: the catalogue did not answer
        raise CatalogueError(unreadable(url, err)) from None
    log.info("%s: %d STAC item(s) found", url, len(items))
    # in the order of their ids, not of the catalogue's pages: every process (DDP) holds the scenes alike
    return StacItems(url, sorted(items, key=lambda item: item.id), arguments.get("bbox"))
