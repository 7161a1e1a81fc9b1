"""An item of Earth Search v1's ``sentinel-2-l2a`` collection, laid out as Element 84 publishes them: band
assets keyed by common name (``nir08`` = B8A) with ``-jp2`` duplicates in a requester-pays S3 bucket,
``visual`` with ``eo:bands`` red/green/blue, ``raster:bands`` declaring scale 0.0001 and offset -0.1 on every
band whatever its pixels hold, ``earthsearch:boa_offset_applied``, MGRS and projection properties."""

from pathlib import Path

import numpy as np

from fakes.stac.cogs import BLOCK, ORIGIN, footprint, grid_fields, lon_lat_bbox, write_cog

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
EXTENSIONS = [
    f"https://stac-extensions.github.io/{name}/schema.json"
    for name in (
        "eo/v1.1.0",
        "projection/v1.1.0",
        "raster/v1.1.0",
        "file/v2.1.0",
        "view/v1.0.0",
        "mgrs/v1.0.0",
        "grid/v1.0.0",
        "processing/v1.1.0",
    )
]
# key -> (file, band, description, centre and width in micrometres, common name, resolution)
BANDS = {
    "coastal": ("B01", "Coastal aerosol (band 1)", 0.443, 0.027, "coastal", 60),
    "blue": ("B02", "Blue (band 2)", 0.49, 0.098, "blue", 10),
    "green": ("B03", "Green (band 3)", 0.56, 0.045, "green", 10),
    "red": ("B04", "Red (band 4)", 0.665, 0.038, "red", 10),
    "rededge1": ("B05", "Red edge 1 (band 5)", 0.704, 0.019, "rededge", 20),
    "rededge2": ("B06", "Red edge 2 (band 6)", 0.74, 0.018, "rededge", 20),
    "rededge3": ("B07", "Red edge 3 (band 7)", 0.783, 0.028, "rededge", 20),
    "nir": ("B08", "NIR 1 (band 8)", 0.842, 0.145, "nir", 10),
    "nir08": ("B8A", "NIR 2 (band 8A)", 0.865, 0.033, "nir08", 20),
    "nir09": ("B09", "NIR 3 (band 9)", 0.945, 0.026, "nir09", 60),
    "swir16": ("B11", "SWIR 1 (band 11)", 1.61, 0.143, "swir16", 20),
    "swir22": ("B12", "SWIR 2 (band 12)", 2.19, 0.242, "swir22", 20),
}


def _raster(resolution: int, scale: float = 0.0001, offset: float = -0.1, dtype: str = "uint16") -> list[dict]:
    return [{"nodata": 0, "data_type": dtype, "bits_per_sample": 15, "spatial_resolution": resolution, "scale": scale,
             "offset": offset}]  # fmt: skip


def earth_search_item(
    files: Path,
    base_url: str,
    stored: dict[str, np.ndarray],
    boa_offset_applied: bool,
    baseline: str = "05.10",
    date: str = "20230615",
    scl: np.ndarray | None = None,
    cloud_cover: float = 0.0,
    tile: str = "32UMU",
    origin: tuple[float, float] = ORIGIN,
    block: int = BLOCK,
) -> dict:
    """The item of MGRS ``tile`` (its grid from ``origin``, in its UTM zone) sensed on ``date``, its COGs written
    under ``files`` (served at ``base_url``) from ``stored`` (band -> uint16 DN at the band's native resolution,
    as the files hold them), tiled ``block`` px; ``scl`` (20 m classes) or vegetation everywhere. Bands missing
    from ``stored`` get no asset."""
    zone, band_letter, square = int(tile[:2]), tile[2], tile[3:]
    epsg = 32600 + zone  # UTM north, as every tile faked here
    item_id = f"S2A_{tile}_{date}_0_L2A"
    folder = f"sentinel-s2-l2a-cogs/{zone}/{band_letter}/{square}/{date[:4]}/{int(date[4:6])}/{item_id}"
    jp2 = f"s3://sentinel-s2-l2a/tiles/{zone}/{band_letter}/{square}/{date[:4]}/{int(date[4:6])}/{int(date[6:])}/0"
    assets: dict[str, dict] = {}

    def cog(name: str, pixels: np.ndarray, resolution: int) -> str:
        write_cog(files / folder / f"{name}.tif", pixels, resolution, origin, epsg, block)
        return f"{base_url}/{folder}/{name}.tif"

    for key, (band, description, centre, width, common, resolution) in BANDS.items():
        if band not in stored:
            continue
        eo = [{"name": key, "common_name": common, "description": description, "center_wavelength": centre,
               "full_width_half_max": width}]  # fmt: skip
        asset = {"type": COG, "title": f"{description} - {resolution}m",
                 "eo:bands": eo, "gsd": resolution, **grid_fields(resolution, origin),
                 "raster:bands": _raster(resolution), "roles": ["data", "reflectance"]}  # fmt: skip
        assets[key] = {"href": cog(band, stored[band], resolution), **asset}
        folder_res = f"R{resolution}m"
        assets[f"{key}-jp2"] = {**asset, "href": f"{jp2}/{folder_res}/{band}.jp2", "type": "image/jp2"}
    classes = scl if scl is not None else np.full((stored["B02"].shape[0] // 2,) * 2, 4, np.uint8)
    assets["scl"] = {"href": cog("SCL", classes, 20), "type": COG, "title": "Scene classification map (SCL)",
                     **grid_fields(20, origin), "roles": ["data", "reflectance"],
                     "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}]}  # fmt: skip
    assets["scl-jp2"] = {**assets["scl"], "href": f"{jp2}/R20m/SCL.jp2", "type": "image/jp2"}
    colour = np.stack([np.clip(stored[b] // 8, 1, 255).astype(np.uint8) for b in ("B04", "B03", "B02")])
    assets["visual"] = {"href": cog("TCI", colour, 10), "type": COG, "title": "True color image",
                        "eo:bands": [{"name": n, "common_name": n, "description": d} for n, d in
                                     (("red", "Red (band 4)"), ("green", "Green (band 3)"), ("blue", "Blue (band 2)"))],
                        **grid_fields(10, origin), "roles": ["visual"]}  # fmt: skip
    for key, value in (("aot", 110), ("wvp", 1500)):  # constant atmosphere, as the products' fakes write
        pixels = np.full(stored["B02"].shape, value, np.uint16)
        assets[key] = {"href": cog(key.upper(), pixels, 10), "type": COG, "title": key.upper(),
                       **grid_fields(10, origin), "raster:bands": _raster(10, 0.001, 0),
                       "roles": ["data", "reflectance"]}  # fmt: skip
    assets["thumbnail"] = {"href": f"{base_url}/{folder}/thumbnail.jpg", "type": "image/jpeg", "roles": ["thumbnail"]}
    assets["granule_metadata"] = {"href": f"{base_url}/{folder}/granule_metadata.xml", "type": "application/xml",
                                  "roles": ["metadata"]}  # fmt: skip
    bbox = lon_lat_bbox(origin, stored["B02"].shape[0], epsg)
    when = f"{date[:4]}-{date[4:6]}-{date[6:]}T10:30:31.024000Z"
    properties = {
        "created": when, "platform": "sentinel-2a", "constellation": "sentinel-2", "instruments": ["msi"],
        "eo:cloud_cover": cloud_cover, "proj:epsg": epsg, "mgrs:utm_zone": zone, "mgrs:latitude_band": band_letter,
        "mgrs:grid_square": square, "grid:code": f"MGRS-{tile}", "view:sun_azimuth": 150.1, "view:sun_elevation": 62.3,
        "s2:product_type": "S2MSI2A", "s2:processing_baseline": baseline,
        "s2:product_uri": f"S2A_MSIL2A_{date}T103031_N{baseline.replace('.', '')}_R108_T{tile}_{date}T170036.SAFE",
        "s2:sequence": "0", "datetime": when, "earthsearch:s3_path": f"s3://sentinel-cogs/{folder}",
        "earthsearch:boa_offset_applied": boa_offset_applied, "processing:software": {"sentinel2-to-stac": "0.1.1"},
        "updated": when,
    }  # fmt: skip
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "properties": properties,
        "geometry": footprint(bbox),
        "links": [
            {"rel": "license", "href": "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"}
        ],
        "assets": assets,
        "bbox": bbox,
        "stac_extensions": EXTENSIONS,
        "collection": "sentinel-2-l2a",
    }
