"""STAC items of one area as one scene (``data.maps.composite: median``): per pixel and band, the median over
the items of the band in the model's units (each item read by its own :class:`ItemScene`, so with its own
offset), leaving out what is no data in an item, clouds, their shadows and cirrus (SCL 3, 8, 9, 10: always
masked here, whatever ``data.maps.mask_clouds`` says, since a median of clouds is no use). A pixel valid in
no item is no data. Items of other tiles or UTM zones are put onto one grid (see :func:`on_one_grid`);
memory is a block of rows times the number of items, never the area times the dates."""

import json
import logging
import warnings

import numpy as np

from eurosat_finetune.data.scenes.catalog import SceneOptions, TrainedOn
from eurosat_finetune.data.scenes.sources import SceneSource
from eurosat_finetune.data.scenes.stac_assets import band_assets
from eurosat_finetune.data.scenes.stac_items import BBox, StacItems
from eurosat_finetune.data.scenes.stac_scenes import ItemScene, opened_items
from eurosat_finetune.data.scenes.windows import Scene
from eurosat_finetune.errors import BandError

log = logging.getLogger(__name__)


NETWORK_ITEMS = 8  # up to this many dates are sorted by a network of element-wise min and max, beyond by np.sort


def median_of(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The per-pixel median over axis 0 of ``values`` ``(items, channels, rows, width)``, float32 with NaN where
    an item has no data (sorted in place: no copy), as float32 (the mean of the middle two for an even count),
    and where any item holds data. The items are sorted with NaN last, then each pixel picks by its count of
    items with data: exact, and much faster than ``np.nanmedian``. A few items (the usual dates of a composite)
    are sorted by an odd-even transposition network of whole-array ``fmin`` (a number before NaN) and
    ``maximum`` (NaN after a number): about 7 times faster than ``np.sort`` along the first axis for 3 dates."""
    items = len(values)
    count = (~np.isnan(values[:, 0])).sum(axis=0)  # (rows, width): an item's pixel is data in every channel or none
    if items <= NETWORK_ITEMS:
        scratch = np.empty(values.shape[1:], np.float32)
        for step in range(items):
            for i in range(step % 2, items - 1, 2):
                first, second = values[i], values[i + 1]
                np.fmin(first, second, out=scratch)
                np.maximum(first, second, out=second)
                first[...] = scratch
    else:
        values.sort(axis=0)  # NaN sort last
    middle = np.zeros(values.shape[1:], np.float32)  # 0 where no item holds data (then masked)
    for held in range(1, items + 1):
        pick = count == held
        if pick.any():
            low, high = (held - 1) // 2, held // 2
            np.copyto(middle, (values[low] + values[high]) * np.float32(0.5), where=pick[None])
    return middle, count > 0


class CompositeScene(SceneSource):
    """The median of ``scenes`` (:class:`ItemScene` read with their clouds masked, all on one grid; see the
    module's docstring). Rows, block sizes and preview size are the first scene's grid's."""

    def __init__(self, name: str, path: str, scenes: list[ItemScene], kept: ItemScene) -> None:
        first = scenes[0]  # all on one grid (see on_one_grid), ``kept``'s lattice
        self.scenes, self.kept = scenes, kept
        super().__init__(name, path, first.grid, first.channels, first.units)

    def read_rows(self, top: int, bottom: int) -> tuple[np.ndarray, np.ndarray]:
        values: np.ndarray | None = None  # (items, channels, rows, width): a block of rows per item, no more
        for i, scene in enumerate(self.scenes):
            pixels, valid = scene.read_rows(top, bottom)
            if values is None:
                values = np.empty((len(self.scenes), *pixels.shape), np.float32)
            values[i] = pixels
            values[i][:, ~valid] = np.nan
        assert values is not None  # a composite has one item at least
        middle, valid = median_of(values)
        middle[:, ~valid] = 0  # no data in every item: DN 0, as a product's no data
        pixels = np.empty(middle.shape, self.units.dtype)
        np.clip(np.rint(middle), 0, np.iinfo(self.units.dtype).max, out=pixels, casting="unsafe")
        return pixels, valid

    def preview(self, height: int, width: int) -> np.ndarray:
        """The median of the items' previews (no data, 0, left out): a coarse look, clouds not masked."""
        previews = np.stack([scene.preview(height, width) for scene in self.scenes]).astype(np.float32)
        previews[previews <= 0] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: no data in every preview
            return np.nan_to_num(np.nanmedian(previews, axis=0), nan=0.0)

    def tags(self) -> dict[str, str]:
        first = self.scenes[0].tags()
        items = []
        for scene in self.scenes:
            tags = scene.tags()
            items.append(
                {
                    "stac_item": tags["stac_item"],
                    "stac_item_href": tags["stac_item_href"],
                    "product": tags["product"],
                    "datetime": tags["datetime"],
                    "processing_baseline": tags["processing_baseline"],
                    "offsets_applied": json.loads(tags["offsets_applied"]),
                    "offset_decided_by": tags["offset_decided_by"],
                    "offset_metadata": tags["offset_metadata"],
                    "offset_pixels": tags["offset_pixels"],
                    "grid": scene.placed,
                }
            )
        tags = {
            "composite": "median",
            "stac_items": json.dumps(items),
            "stac_collection": first["stac_collection"],
            "processing_level": first["processing_level"],
            "bands": first["bands"],
            "cloud_masked": "true",
        }
        if "area_bbox" in first:
            tags["area_bbox"] = first["area_bbox"]
        return tags

    @property
    def rows_above(self) -> int:
        return self.kept.rows_above  # the tile rows of the item whose grid it is (other tiles' fall elsewhere)

    def block_rows(self) -> int:
        return min(scene.block_rows() for scene in self.scenes)  # every item's blocks decoded once

    def deal_rows(self) -> int:
        return max(scene.deal_rows() for scene in self.scenes)

    def close(self) -> None:
        for scene in self.scenes:
            scene.close()


def on_one_grid(scenes: list[ItemScene], area: BBox | None) -> ItemScene:
    """Every item onto one grid: the lattice of the item covering most of the area (then: that most items
    share), over the whole area (or that item's extent, without one). A bbox near a tile's edge finds the
    neighbouring tiles' items too (tiles overlap by about 10 km): another tile of the same UTM zone is cut
    onto the grid (the zone's tiles share a 60 m lattice, so its pixels stay as they are), another zone's
    item is warped onto it; each pixel is then the median of the items that reach it. The items of other
    tiles are named in one line, with how they were put onto the grid (also in the map's tags). Returns the
    item whose grid it is."""
    tiles: dict[object, list[ItemScene]] = {}
    for scene in scenes:
        tiles.setdefault(scene.own_grid, []).append(scene)
    kept = max(tiles.values(), key=lambda group: (group[0].grid.width * group[0].grid.height, len(group)))
    grid = kept[0].own_grid.covering(area, "EPSG:4326") if area is not None else kept[0].grid
    for scene in scenes:
        if scene.grid != grid:
            scene.put_onto(grid)
    others = [scene for scene in scenes if scene not in kept]
    if others:
        log.info(
            "data.maps.composite=median: the grid is %s's, which covers most of the area; %d item(s) of other "
            "tiles put onto it: %s",
            kept[0].item_tags["stac_item"],
            len(others),
            ", ".join(f"{scene.item_tags['stac_item']} ({scene.placed})" for scene in others),
        )
    return kept[0]


def composite_scene(stac: StacItems, options: SceneOptions, trained: TrainedOn) -> tuple[Scene, list[str]]:
    """The items of ``stac`` as one median composite over ``data.maps.area`` or the search's bbox, named
    ``composite_<first date>_<last date>``, with its grid of windows; and the items left out (see
    :func:`opened_in_threads`). Every item needs its scene classification (SCL): one without is refused in one
    line."""
    tile, stride = options.window_sizes(trained)
    for item in stac.items:
        try:
            band_assets(item, ["SCL"])
        except BandError:
            raise BandError(
                f"STAC item {item.id} has no scene classification (SCL) asset, which data.maps.composite=median "
                f"reads to leave clouds out (assets: {', '.join(item.assets)}); map it with data.maps.composite=none"
            ) from None
    scenes, left_out = opened_items(stac, options, trained, mask_clouds=True)  # the median of a cloud is no use
    kept = on_one_grid(scenes, options.area or stac.bbox)
    dates = sorted(scene.item_tags["datetime"][:10].replace("-", "") for scene in scenes)
    source = CompositeScene(f"composite_{dates[0]}_{dates[-1]}", stac.location, scenes, kept)
    return options.scene(source, tile, stride), left_out
