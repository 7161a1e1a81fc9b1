"""Synthetic Sentinel-2 products laid out as ESA distributes them (product specification 14 and later).

``write_product`` writes a Level-1C or Level-2A product, as a ``.SAFE`` folder or as the ``.zip`` that holds
one, with the folder and file names, JPEG 2000 band files and metadata elements of a real product, so that
GDAL's SENTINEL2 driver and readers of real products open it. ``sample_product_bands`` makes plausible pixel
values for it (EuroSAT MS statistics, smooth fields and stripes). None of it is real data; writing is a pure
function of the arguments (no clock, no randomness), so the same call writes the same bytes.

The modules, in the order a product is made: ``sample_bands`` (pixel values) and ``resampling`` (to each band's
resolution); ``naming`` and ``specification`` (identifiers, fixed values); ``image_files`` (JPEG 2000),
``product_metadata``, ``tile_metadata`` and ``manifest`` (XML, built from ``xml_elements``); ``writer``.
"""

from eurosat_finetune.data.bands import ESA_BANDS, NATIVE_RESOLUTION
from fakes.sentinel2.naming import SPACECRAFT, has_offset, product_name
from fakes.sentinel2.resampling import native_bands
from fakes.sentinel2.sample_bands import iter_sample_product_bands, sample_product_bands
from fakes.sentinel2.specification import (
    AOT_DN,
    BASELINE_OFFSET,
    L2A_LAYOUT,
    QUANTIFICATION,
    SCL_CLASSES,
    WVP_DN,
)
from fakes.sentinel2.writer import write_product

__all__ = [
    "AOT_DN",
    "BASELINE_OFFSET",
    "ESA_BANDS",
    "L2A_LAYOUT",
    "NATIVE_RESOLUTION",
    "QUANTIFICATION",
    "SCL_CLASSES",
    "SPACECRAFT",
    "WVP_DN",
    "has_offset",
    "iter_sample_product_bands",
    "native_bands",
    "product_name",
    "sample_product_bands",
    "write_product",
]
