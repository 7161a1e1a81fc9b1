"""STAC items as scenes: each item read as a Sentinel-2 product is, through the same :class:`ProductScene`
(its band files are the item's COG assets, opened by GDAL path; 20 m and 60 m bands put onto the 10 m grid
by the same code), with the offset of :mod:`.stac_radiometry` and, for a search, cropped to its bbox. The
map's tags add the item, its date and how its offset was decided."""

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from eurosat_finetune.data.bands import RGB_BANDS
from eurosat_finetune.data.scenes.catalog import SceneOptions, TrainedOn
from eurosat_finetune.data.scenes.sentinel2_products import Sentinel2Product
from eurosat_finetune.data.scenes.sources import ModelUnits, ProductScene
from eurosat_finetune.data.scenes.stac_assets import band_assets
from eurosat_finetune.data.scenes.stac_items import BBox, StacItems
from eurosat_finetune.data.scenes.stac_radiometry import Radiometry, decide
from eurosat_finetune.data.scenes.windows import Scene
from eurosat_finetune.errors import ConfigError, UserError, first_line
from eurosat_finetune.tools.progress import progress_bar

if TYPE_CHECKING:
    import pystac


def item_product(item: "pystac.Item", bands: list[str], mask_clouds: bool) -> tuple[Sentinel2Product, Radiometry]:
    """The item as a product: its bands' assets (a missing one refused before any pixel is read), its
    radiometry decided and checked, its scene classification when clouds are masked."""
    wanted = [*bands, *(["SCL"] if mask_clouds else [])]
    assets = band_assets(item, wanted)
    radiometry = decide(item, {band: asset for band, asset in assets.items() if band != "SCL"})
    product = Sentinel2Product(
        path=item.get_self_href() or item.id,
        name=item.id,
        level="L2A",  # the catalogues' Sentinel-2 collections read here are L2A
        baseline=str(item.properties.get("s2:processing_baseline", "unknown")),
        quantification=radiometry.quantification,
        offsets=radiometry.offsets,
        nodata=0,  # every catalogue's Sentinel-2 COGs: DN 0 is no data
        band_files={band: (asset.gdal_path, asset.resolution) for band, asset in assets.items() if band != "SCL"},
        scl_file=assets["SCL"].gdal_path if "SCL" in assets else None,
    )
    return product, radiometry


class ItemScene(ProductScene):
    """A STAC item mapped as a Sentinel-2 product (see :class:`ProductScene`), over ``area`` if given."""

    def __init__(
        self,
        name: str,
        item: "pystac.Item",
        trained_bands: list[str] | None,
        units: ModelUnits,
        resolution: float | None,
        mask_clouds: bool,
        area: BBox | None,
    ) -> None:
        product, radiometry = item_product(item, list(trained_bands or RGB_BANDS), mask_clouds)
        super().__init__(name, product, trained_bands, units, resolution, mask_clouds, area)
        when = item.datetime.isoformat() if item.datetime is not None else str(item.properties.get("start_datetime"))
        self.item_tags = {
            "stac_item": item.id,
            "stac_item_href": item.get_self_href() or "",  # which catalogue: collection names are shared
            "stac_collection": str(item.collection_id),
            "product": str(item.properties.get("s2:product_uri", item.id)).removesuffix(".SAFE"),  # ESA's name
            "datetime": when,
            "offset_decided_by": radiometry.decided_by,
            "offset_metadata": radiometry.metadata_said,
            "offset_pixels": radiometry.pixels_showed,
        }
        if area is not None:
            self.item_tags["area_bbox"] = json.dumps(list(area))

    def tags(self) -> dict[str, str]:
        return super().tags() | self.item_tags


log = logging.getLogger(__name__)

OPENING_THREADS = 8  # items opened at once: each open waits on the network (a few requests per band file)


def opened_in_threads(
    make: Callable[["pystac.Item"], ItemScene], items: list["pystac.Item"]
) -> tuple[list[ItemScene], list[str]]:
    """``make`` of every item, in threads of their own that end before this returns: the scenes, and the items
    left out, each with why. Opening an item waits on the network (its band files' headers, its offset check),
    so items open side by side; and GDAL keeps its HTTP connections per thread: ended with the threads, none is
    left for the DataLoader workers forked later to share with this process (a connection shared across a fork
    mixes up the answers meant for each). Of several items, one that fails (a band file missing or unreadable,
    no band the model reads, outside the area) is left out and named; the others are mapped. A single item
    that fails, or all of them, is the error."""

    def attempt(item: "pystac.Item") -> ItemScene | UserError:
        try:
            return make(item)
        except UserError as err:
            return err
        finally:
            progress.update()

    with (
        progress_bar(len(items), "Opening STAC items", " items") as progress,
        ThreadPoolExecutor(max_workers=min(OPENING_THREADS, len(items)), thread_name_prefix="stac-open") as pool,
    ):
        opened = list(pool.map(attempt, items))
    failed = [(item, result) for item, result in zip(items, opened, strict=True) if isinstance(result, UserError)]
    if len(failed) == len(items):
        item, err = failed[0]
        if len(items) == 1:
            raise err
        raise type(err)(f"none of the {len(items)} STAC items could be mapped; the first, {item.id}: {first_line(err)}")
    left_out = [f"{item.id} ({first_line(err)})" for item, err in failed]
    if left_out:
        log.warning(
            "%d of %d STAC item(s) left out, the others are mapped: %s", len(left_out), len(items), "; ".join(left_out)
        )
    return [scene for scene in opened if isinstance(scene, ItemScene)], left_out


def opened_items(
    stac: StacItems, options: SceneOptions, trained: TrainedOn, mask_clouds: bool
) -> tuple[list[ItemScene], list[str]]:
    """The items of ``stac`` opened as scenes over ``data.maps.area`` or the search's bbox (an item listed twice
    is a one-line error), and the items left out (see :func:`opened_in_threads`)."""
    ids = [item.id for item in stac.items]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ConfigError(f"{stac.location} lists item {', '.join(twice)} more than once; each item counts once")
    units = ModelUnits(trained.bands is not None, options.rgb_scale_max)
    area = options.area or stac.bbox
    return opened_in_threads(
        lambda item: ItemScene(item.id, item, trained.bands, units, trained.resolution, mask_clouds, area),
        stac.items,
    )


def item_scenes(stac: StacItems, options: SceneOptions, trained: TrainedOn) -> tuple[list[Scene], list[str]]:
    """One scene per item, named by its id, with its grid of windows; and the items left out."""
    tile, stride = options.window_sizes(trained)
    sources, left_out = opened_items(stac, options, trained, options.mask_clouds)
    return [options.scene(source, tile, stride) for source in sources], left_out
