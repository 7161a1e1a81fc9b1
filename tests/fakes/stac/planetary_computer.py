"""An item of the Planetary Computer's ``sentinel-2-l2a`` collection, laid out as Microsoft publishes them:
band assets keyed ``B01`` ... ``B12``, ``B8A``, ``SCL``, plus ``visual``, ``AOT``, ``WVP`` (COGs under the
product's ``.SAFE`` path), no scale or offset on any asset, ``s2:processing_baseline`` in the properties and
the product's ``MTD_MSIL2A.xml`` as the ``product-metadata`` asset (with BOA_ADD_OFFSET from 04.00 on)."""

from pathlib import Path

import numpy as np

from fakes.sentinel2.naming import ProductNames
from fakes.sentinel2.product_metadata import user_product_xml
from fakes.sentinel2.xml_elements import write_xml
from fakes.stac.cogs import EPSG, footprint, grid_fields, lon_lat_bbox, write_cog

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
    "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
]
# band -> (title, common name, centre and width in micrometres)
BANDS = {
    "B01": ("Band 1 - Coastal aerosol", "coastal", 0.443, 0.027),
    "B02": ("Band 2 - Blue", "blue", 0.49, 0.098),
    "B03": ("Band 3 - Green", "green", 0.56, 0.045),
    "B04": ("Band 4 - Red", "red", 0.665, 0.038),
    "B05": ("Band 5 - Vegetation red edge 1", "rededge", 0.704, 0.019),
    "B06": ("Band 6 - Vegetation red edge 2", "rededge", 0.74, 0.018),
    "B07": ("Band 7 - Vegetation red edge 3", "rededge", 0.783, 0.028),
    "B08": ("Band 8 - NIR", "nir", 0.842, 0.145),
    "B8A": ("Band 8A - Vegetation red edge 4", "rededge", 0.865, 0.033),
    "B09": ("Band 9 - Water vapor", None, 0.945, 0.026),
    "B11": ("Band 11 - SWIR (1.6)", "swir16", 1.61, 0.143),
    "B12": ("Band 12 - SWIR (2.2)", "swir22", 2.19, 0.242),
}
API = "https://planetarycomputer.microsoft.com/api"
RESOLUTION = {"B01": 60, "B09": 60, "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20, "B12": 20}


def planetary_computer_item(
    files: Path,
    base_url: str,
    stored: dict[str, np.ndarray],
    baseline: str = "05.10",
    sensing: str = "20230615T103031",
    scl: np.ndarray | None = None,
) -> dict:
    """The item of tile 32UMU sensed at ``sensing``, its COGs and MTD_MSIL2A.xml written under ``files``
    (served at ``base_url``) from ``stored`` (band -> uint16 DN at its native resolution, as the files hold
    them); ``scl`` (20 m classes) or vegetation everywhere."""
    names = ProductNames("L2A", baseline, "T32UMU", sensing)
    date = sensing[:8]
    safe = f"sentinel2-l2/32/U/MU/{date[:4]}/{date[4:6]}/{date[6:]}/{names.product}.SAFE"
    images = f"{safe}/GRANULE/{names.granule}/IMG_DATA"
    assets: dict[str, dict] = {}

    def cog(key: str, pixels: np.ndarray, resolution: int) -> dict:
        relative = f"{images}/R{resolution}m/{names.band_prefix}_{key.replace('visual', 'TCI')}_{resolution}m.tif"
        write_cog(files / relative, pixels, resolution)
        return {"href": f"{base_url}/{relative}", "type": COG, "roles": ["data"], "gsd": float(resolution),
                **grid_fields(resolution)}  # fmt: skip

    for band, (title, common, centre, width) in BANDS.items():
        if band not in stored:
            continue
        resolution = RESOLUTION.get(band, 10)
        eo = {"name": band, "description": title, "center_wavelength": centre, "full_width_half_max": width}
        eo |= {"common_name": common} if common else {}
        assets[band] = {**cog(band, stored[band], resolution), "title": f"{title} - {resolution}m", "eo:bands": [eo]}
    for key, value in (("AOT", 110), ("WVP", 1500)):
        assets[key] = {**cog(key, np.full(stored["B02"].shape, value, np.uint16), 10), "title": key}
    classes = scl if scl is not None else np.full((stored["B02"].shape[0] // 2,) * 2, 4, np.uint8)
    assets["SCL"] = {**cog("SCL", classes, 20), "title": "Scene classfication map (SCL)"}  # sic, as published
    colour = np.stack([np.clip(stored[b] // 8, 1, 255).astype(np.uint8) for b in ("B04", "B03", "B02")])
    visual_bands = [{"name": b, "common_name": c, "description": BANDS[b][0]} for b, c in
                    (("B04", "red"), ("B03", "green"), ("B02", "blue"))]  # fmt: skip
    assets["visual"] = {**cog("visual", colour, 10), "title": "True color image", "eo:bands": visual_bands}
    bbox = lon_lat_bbox()
    (files / safe).mkdir(parents=True, exist_ok=True)
    write_xml(files / safe / "MTD_MSIL2A.xml", user_product_xml(names, [], "", None))
    for key, name, title in (("product-metadata", "MTD_MSIL2A.xml", "Product metadata"),
                             ("safe-manifest", "manifest.safe", "SAFE manifest")):  # fmt: skip
        assets[key] = {"href": f"{base_url}/{safe}/{name}", "type": "application/xml", "roles": ["metadata"],
                       "title": title}  # fmt: skip
    when = f"{date[:4]}-{date[4:6]}-{date[6:]}T{sensing[9:11]}:{sensing[11:13]}:{sensing[13:]}.024000Z"
    properties = {
        "datetime": when, "platform": "Sentinel-2A", "proj:epsg": EPSG, "instruments": ["msi"],
        "s2:mgrs_tile": "32UMU", "constellation": "Sentinel 2", "s2:granule_id": names.granule_id,
        "eo:cloud_cover": 0.0, "s2:datatake_id": names.datatake_id, "s2:product_uri": f"{names.product}.SAFE",
        "s2:datastrip_id": names.datastrip_id, "s2:product_type": "S2MSI2A", "sat:orbit_state": "descending",
        "s2:datatake_type": "INS-NOBS", "sat:relative_orbit": names.relative_orbit,
        "s2:processing_baseline": baseline,
    }  # fmt: skip
    item_id = names.product.replace(f"_N{baseline.replace('.', '')}", "")  # the Planetary Computer's ids drop Nxxxx
    # rendered by its data API, not a file in its blobs
    preview = f"{API}/data/v1/item/preview.png?collection=sentinel-2-l2a&item={item_id}&assets=visual&format=png"
    assets["rendered_preview"] = {"href": preview, "type": "image/png", "roles": ["overview"], "rel": "preview",
                                  "title": "Rendered preview"}  # fmt: skip
    return {
        "id": item_id,
        "bbox": bbox,
        "type": "Feature",
        "links": [],
        "assets": assets,
        "geometry": footprint(bbox),
        "collection": "sentinel-2-l2a",
        "properties": properties,
        "stac_version": "1.0.0",
        "stac_extensions": EXTENSIONS,
    }
