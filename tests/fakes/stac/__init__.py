"""Synthetic STAC items as Earth Search v1 and the Planetary Computer publish them, and a STAC API that serves
them (with their COGs, by HTTP range requests) on 127.0.0.1. None of it is real data.

``cogs`` writes the band files and makes the pixels; ``earth_search`` and ``planetary_computer`` lay out each
catalogue's items; ``server`` is the API.
"""

from fakes.stac.cogs import EPSG, ORIGIN, SIZE, lon_lat_bbox, scene_pixels, tile_bytes, write_cog
from fakes.stac.earth_search import earth_search_item
from fakes.stac.planetary_computer import planetary_computer_item
from fakes.stac.server import StacServer

__all__ = [
    "EPSG",
    "ORIGIN",
    "SIZE",
    "StacServer",
    "earth_search_item",
    "lon_lat_bbox",
    "planetary_computer_item",
    "scene_pixels",
    "tile_bytes",
    "write_cog",
]
