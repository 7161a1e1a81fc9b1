"""Synthetic Sentinel-2 products laid out as ESA distributes them (product specification 14 and later).

``write_product`` writes a Level-1C or Level-2A product, as a ``.SAFE`` folder or as the ``.zip`` that holds
one, with the folder and file names, JPEG 2000 band files and metadata elements of a real product, so that
GDAL's SENTINEL2 driver and readers of real products open it. ``sample_product_bands`` makes plausible pixel
values for it (EuroSAT MS statistics, smooth fields and stripes). None of it is real data; writing is a pure
function of the arguments (no clock, no randomness), so the same call writes the same bytes.
"""

import datetime as dt
import hashlib
import math
import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform

from eurosat_finetune.data.bands import EUROSAT_MS_MEAN, EUROSAT_MS_STD

ESA_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
"""The 13 MSI bands in ESA ``band_id`` order 0..12 (B8A ninth)."""

NATIVE_RESOLUTION: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}  # fmt: skip
"""Each band's ground sampling distance in metres, as L1C stores it."""

L2A_LAYOUT: dict[int, tuple[str, ...]] = {
    10: ("B02", "B03", "B04", "B08", "TCI", "AOT", "WVP"),
    20: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12", "TCI", "AOT", "WVP", "SCL"),
    60: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12", "TCI", "AOT", "WVP", "SCL"),
}
"""The files of each ``IMG_DATA/R<res>m`` folder of an L2A product, in the order MTD_MSIL2A.xml lists them."""

SCL_CLASSES: tuple[str, ...] = (
    "NODATA", "SATURATED_DEFECTIVE", "DARK_FEATURE_SHADOW", "CLOUD_SHADOW", "VEGETATION", "NOT_VEGETATED",
    "WATER", "UNCLASSIFIED", "CLOUD_MEDIUM_PROBA", "CLOUD_HIGH_PROBA", "THIN_CIRRUS", "SNOW_ICE",
)  # fmt: skip
"""L2A scene classification: the class of value ``i`` is ``SC_<SCL_CLASSES[i]>``."""

QUANTIFICATION = 10000
"""Reflectance = (DN + offset) / QUANTIFICATION."""

BASELINE_OFFSET = -1000
"""The radiometric offset of every band since processing baseline 04.00 (none before)."""

AOT_DN, WVP_DN = 110, 1500
"""The constant aerosol optical thickness (0.11 at quantification 1000) and water vapour (1.5 cm) written."""

SPACECRAFT = "S2A"
_CENTRE = "2APS"  # the processing centre in S2A identifiers since 2022
_REFERENCE_ORBIT = (dt.datetime(2023, 6, 15, 10, 30, 31), 41680, 108)  # absolute and relative orbit then
_ORBIT_SECONDS = 10 * 86400 / 143  # 143 orbits in the 10-day repeat cycle
_DOI = {"L1C": "https://doi.org/10.5270/S2_-742ikth", "L2A": "https://doi.org/10.5270/S2_-znk9xsj"}
_PSD = "https://psd-14.sentinel2.eo.esa.int/PSD/"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"

# Sentinel-2A spectral response summary (nm: min, max, central) and solar irradiance (W/m2/um), per band_id.
_WAVELENGTH = (
    (411, 456, 442.7), (456, 533, 492.7), (538, 583, 559.8), (646, 684, 664.6), (694, 713, 704.1),
    (731, 749, 740.5), (769, 797, 782.8), (760, 908, 832.8), (848, 881, 864.7), (932, 958, 945.1),
    (1337, 1412, 1373.5), (1539, 1682, 1613.7), (2078, 2320, 2202.4),
)  # fmt: skip
_SOLAR_IRRADIANCE = (
    1884.69, 1959.72, 1823.24, 1512.06, 1424.64, 1287.61, 1162.08, 1041.63, 955.32, 812.92, 367.15, 245.59, 85.25,
)  # fmt: skip

# How each band follows the two fields of sample_product_bands (vegetation, brightness); the rest is noise.
_LOADINGS = {
    "B01": (-0.30, 0.80), "B02": (-0.40, 0.80), "B03": (-0.20, 0.85), "B04": (-0.55, 0.75), "B05": (-0.10, 0.85),
    "B06": (0.60, 0.60), "B07": (0.75, 0.50), "B08": (0.75, 0.50), "B8A": (0.75, 0.50), "B09": (0.50, 0.50),
    "B10": (0.00, 0.40), "B11": (-0.35, 0.80), "B12": (-0.50, 0.75),
}  # fmt: skip
_ROWS_PER_CHUNK = 512  # sample_product_bands works in strips of this many rows (fixed: it seeds the noise)


# ---------------------------------------------------------------------------------------------- pixels


def _block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """``factor`` x ``factor`` block means, rounded half up; 0 (no data) wherever a block holds a 0."""
    h, w = array.shape
    blocks = array.reshape(h // factor, factor, w // factor, factor)
    area = factor * factor
    mean = (blocks.sum(axis=(1, 3), dtype=np.uint32) + area // 2) // area
    mean[blocks.min(axis=(1, 3)) == 0] = 0
    return mean.astype(np.uint16)


def _block_mode(classes: np.ndarray, factor: int) -> np.ndarray:
    """The most frequent class of each ``factor`` x ``factor`` block (ties: the lower class)."""
    h, w = classes.shape
    blocks = classes.reshape(h // factor, factor, w // factor, factor)
    best = np.zeros((h // factor, w // factor), np.uint8)
    best_count = np.full(best.shape, -1, np.int16)
    for value in range(int(classes.max()) + 1):
        count = (blocks == value).sum(axis=(1, 3), dtype=np.int16)
        better = count > best_count
        best[better], best_count[better] = value, count[better]
    return best


def _repeat(array: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upsampling by ``factor``."""
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def native_bands(stack: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """From uint16 arrays on the 10 m grid (H, W both multiples of 6), each band at its native resolution:
    10 m bands as they are, 20 m and 60 m bands block-averaged by 2 and 6 (rounded half up, uint16). A block
    that holds any 0 (no data) becomes 0; any other block is at least 1."""
    shapes = {array.shape for array in stack.values()}
    if len(shapes) > 1:
        raise ValueError(f"native_bands: all bands must share one 10 m grid, got shapes {sorted(shapes)}")
    native = {}
    for band, array in stack.items():
        if band not in NATIVE_RESOLUTION:
            raise ValueError(f"native_bands: unknown band {band!r}; bands are {', '.join(ESA_BANDS)}")
        if array.dtype != np.uint16 or array.ndim != 2 or array.shape[0] % 6 or array.shape[1] % 6:
            raise ValueError(
                f"native_bands: {band} must be a 2-D uint16 array whose height and width are multiples of 6, "
                f"got {array.dtype} {array.shape}"
            )
        factor = NATIVE_RESOLUTION[band] // 10
        native[band] = array if factor == 1 else _block_mean(array, factor)
    return native


def _true_colour(red: np.ndarray, green: np.ndarray, blue: np.ndarray, offset: int) -> np.ndarray:
    """TCI: reflectance 0..0.2 (DN + offset 0..2000) mapped to 1..255, DN 0 (no data) to 0; (3, H, W) uint8."""
    tci = np.empty((3, *red.shape), np.uint8)
    for channel, dn in enumerate((red, green, blue)):
        value = np.clip(dn.astype(np.int32) + offset, 0, 2000)
        value *= 254
        value += 1000
        value //= 2000
        value += 1
        value[dn == 0] = 0
        tci[channel] = value
    return tci


def _lowres_grid(seed: int, key: int, height: int, width: int, cell: int) -> np.ndarray:
    """Standard-normal values on a grid of ``cell``-pixel cells covering (height, width), plus one cell."""
    rng = np.random.default_rng([seed, key])
    return rng.standard_normal((height // cell + 2, width // cell + 2), dtype=np.float32)


def _bilinear_rows(grid: np.ndarray, rows: np.ndarray, width: int, cell: int) -> np.ndarray:
    """``grid`` (one value per ``cell`` pixels) bilinearly interpolated at ``rows`` x ``range(width)``."""

    def weights(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        position = (coords.astype(np.float32) + 0.5) / cell
        index = np.floor(position).astype(np.intp)
        return index, (position - index).astype(np.float32)

    r0, ry = weights(rows)
    c0, cx = weights(np.arange(width))
    by_row = grid[r0] * (1 - ry)[:, None] + grid[r0 + 1] * ry[:, None]
    return by_row[:, c0] * (1 - cx) + by_row[:, c0 + 1] * cx


class _Fields:
    """The two smooth fields every band follows, computed strip by strip: vegetation (parcels plus
    kilometre-scale blobs) and brightness (blobs plus diagonal stripes). Unit variance, float32."""

    PARCEL, VEG_BLOB, BRIGHT_BLOB, STRIPE = (24, 32), 150, 90, 40.0

    def __init__(self, height: int, width: int, seed: int) -> None:
        self.width = width
        self.parcels = _lowres_grid(seed, 1001, height, width, min(self.PARCEL))
        self.veg_blobs = _lowres_grid(seed, 1002, height, width, self.VEG_BLOB)
        self.bright_blobs = _lowres_grid(seed, 1003, height, width, self.BRIGHT_BLOB)
        angle = 2 * math.pi * (np.random.default_rng([seed, 1004]).random() * 0.5 + 0.1)
        x = np.arange(width, dtype=np.float32) * np.float32(2 * math.pi * math.cos(angle) / self.STRIPE)
        self.stripe_sin_x, self.stripe_cos_x = np.sin(x), np.cos(x)
        self.stripe_ky = np.float32(2 * math.pi * math.sin(angle) / self.STRIPE)

    def strip(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parcel_y, parcel_x = self.PARCEL
        parcels = self.parcels[rows // parcel_y][:, np.arange(self.width) // parcel_x]
        veg = _bilinear_rows(self.veg_blobs, rows, self.width, self.VEG_BLOB)
        veg *= 0.7
        veg += 0.7 * parcels
        y = rows.astype(np.float32) * self.stripe_ky
        stripes = np.sin(y)[:, None] * self.stripe_cos_x + np.cos(y)[:, None] * self.stripe_sin_x
        bright = _bilinear_rows(self.bright_blobs, rows, self.width, self.BRIGHT_BLOB)
        bright *= 0.8
        bright += np.float32(0.6 * math.sqrt(2)) * stripes
        return veg, bright


def _band_strip(band: str, veg: np.ndarray, bright: np.ndarray, seed: int, chunk: int, offset: int) -> np.ndarray:
    """One strip of one band: DN = mean + std * (loadings . fields + noise) + offset, rounded, clipped to
    1..65534. The noise is the sum of two random bytes (triangular, mean 255, std 104.5): cheap and bell-like."""
    a, b = _LOADINGS[band]
    std = EUROSAT_MS_STD[band]
    noise_scale = math.sqrt(max(0.0, 1 - a * a - b * b)) * std / 104.52
    rng = np.random.default_rng([seed, ESA_BANDS.index(band), chunk])
    size = veg.size
    noise = np.add(*np.frombuffer(rng.bytes(2 * size), np.uint8).reshape(2, *veg.shape), dtype=np.uint16)
    value = np.multiply(veg, np.float32(a * std))
    term = np.multiply(bright, np.float32(b * std))
    value += term
    value += np.multiply(noise, np.float32(noise_scale), out=term)
    value += np.float32(EUROSAT_MS_MEAN[band] + offset - 255 * noise_scale + 0.5)  # + 0.5: the cast rounds
    np.clip(value, 1, 65534.5, out=value)
    return value.astype(np.uint16)


def iter_sample_product_bands(
    height: int, width: int, seed: int = 0, offset: int = 1000, bands: Sequence[str] = ESA_BANDS
) -> Iterator[tuple[str, np.ndarray]]:
    """``sample_product_bands`` one band at a time (the same arrays). At 10980 x 10980 each band is 241 MB and
    the two fields, kept between bands, 964 MB: a caller that writes and drops each band needs ~1.3 GB."""
    fields = _Fields(height, width, seed)
    strips = [np.arange(start, min(start + _ROWS_PER_CHUNK, height)) for start in range(0, height, _ROWS_PER_CHUNK)]
    cache = [fields.strip(rows) for rows in strips] if len(bands) > 1 else None
    for band in bands:
        out = np.empty((height, width), np.uint16)
        for chunk, rows in enumerate(strips):
            veg, bright = cache[chunk] if cache is not None else fields.strip(rows)
            out[rows] = _band_strip(band, veg, bright, seed, chunk, offset)
        yield band, out


def sample_product_bands(height: int, width: int, seed: int = 0, offset: int = 1000) -> dict[str, np.ndarray]:
    """10 m-grid uint16 DN arrays for all 13 bands (ESA names): EuroSAT MS's per-band mean and std (reflectance
    x 10,000) plus ``offset`` (1000 for baseline >= 04.00 products, 0 before), with parcels, kilometre-scale
    blobs and stripes (so windows differ and bands correlate like vegetation and bare soil), never 0.

    Deterministic in (height, width, seed, offset). At 10980 x 10980: the 13 arrays are 3.1 GB, peak ~4 GB,
    ~30 s on 2 cores; ``iter_sample_product_bands`` gives them one at a time."""
    out = {band: np.empty((height, width), np.uint16) for band in ESA_BANDS}
    fields = _Fields(height, width, seed)
    for chunk, start in enumerate(range(0, height, _ROWS_PER_CHUNK)):
        rows = np.arange(start, min(start + _ROWS_PER_CHUNK, height))
        veg, bright = fields.strip(rows)
        for band in ESA_BANDS:
            out[band][rows] = _band_strip(band, veg, bright, seed, chunk, offset)
    return out


# ---------------------------------------------------------------------------------------------- names


def _baseline_digits(baseline: str) -> str:
    if not re.fullmatch(r"\d\d\.\d\d", baseline):
        raise ValueError(f"baseline={baseline!r}: give the processing baseline as NN.NN, e.g. '05.09'")
    return baseline.replace(".", "")


def has_offset(baseline: str) -> bool:
    """Whether products of this processing baseline carry the -1000 radiometric offset (04.00 and later)."""
    return int(_baseline_digits(baseline)) >= 400


def _epsg(tile: str) -> int:
    match = re.fullmatch(r"T(\d\d)([C-X])[A-Z]{2}", tile)
    if not match or not 1 <= int(match[1]) <= 60:
        raise ValueError(f"tile={tile!r}: give an MGRS tile as T<zone><band><square>, e.g. 'T32UMU'")
    return (32600 if match[2] >= "N" else 32700) + int(match[1])


def _sensing_time(sensing: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(sensing, "%Y%m%dT%H%M%S")
    except ValueError:
        raise ValueError(f"sensing={sensing!r}: give the datatake start as YYYYMMDDTHHMMSS") from None


class _Names:
    """Every identifier of a product, derived from its level, baseline, tile and sensing time."""

    def __init__(self, level: str, baseline: str, tile: str, sensing: str) -> None:
        self.level, self.baseline, self.tile = level, baseline, tile
        self.epsg = _epsg(tile)
        self.sensing = _sensing_time(sensing)
        self.datastrip_start = self.sensing - dt.timedelta(seconds=1)
        self.generation = self.sensing + dt.timedelta(hours=6, minutes=30, seconds=5)
        when, absolute, relative = _REFERENCE_ORBIT
        orbits = round((self.sensing - when).total_seconds() / _ORBIT_SECONDS)
        self.absolute_orbit = absolute + orbits
        self.relative_orbit = (relative - 1 + orbits) % 143 + 1
        n = f"N{_baseline_digits(baseline)}"
        stamp, gen, start = (t.strftime("%Y%m%dT%H%M%S") for t in (self.sensing, self.generation, self.datastrip_start))
        self.product = f"{SPACECRAFT}_MSI{level}_{stamp}_{n}_R{self.relative_orbit:03d}_{tile}_{gen}"
        self.granule = f"{level}_{tile}_A{self.absolute_orbit:06d}_{start}"
        self.band_prefix = f"{tile}_{stamp}"
        suffix = f"N{baseline}"
        self.granule_id = f"{SPACECRAFT}_OPER_MSI_{level}_TL_{_CENTRE}_{gen}_A{self.absolute_orbit:06d}_{tile}_{suffix}"
        self.l1c_granule_id = self.granule_id.replace("_L2A_", "_L1C_")
        self.datastrip_id = f"{SPACECRAFT}_OPER_MSI_{level}_DS_{_CENTRE}_{gen}_S{start}_{suffix}"
        self.datastrip_dir = f"DS_{_CENTRE}_{gen}_S{start}"
        self.datatake_id = f"G{SPACECRAFT}_{stamp}_{self.absolute_orbit:06d}_{suffix}"


def product_name(
    level: Literal["L1C", "L2A"] = "L2A",
    baseline: str = "05.09",
    tile: str = "T32UMU",
    sensing: str = "20230615T103031",
) -> str:
    """The product name ``write_product`` gives, without ``.SAFE`` or ``.zip``, e.g.
    ``S2A_MSIL2A_20230615T103031_N0509_R108_T32UMU_20230615T170036``."""
    return _Names(level, baseline, tile, sensing).product


# ---------------------------------------------------------------------------------------------- XML


def _iso(moment: dt.datetime, micro: bool = False) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (".000000Z" if micro else ".024Z")


def _sub(parent: ET.Element, tag: str, text: object = None, **attrs: object) -> ET.Element:
    element = ET.SubElement(parent, tag, {key: str(value) for key, value in attrs.items()})
    if text is not None:
        element.text = str(text)
    return element


def _root(tag: str, schema: str) -> ET.Element:
    ET.register_namespace("n1", _PSD + schema)
    ET.register_namespace("xsi", _XSI)
    return ET.Element(f"{{{_PSD + schema}}}{tag}", {f"{{{_XSI}}}schemaLocation": _PSD + schema})


def _n1(parent: ET.Element, schema: str, tag: str) -> ET.Element:
    return ET.SubElement(parent, f"{{{_PSD + schema}}}{tag}")


def _write_xml(path: Path, root: ET.Element) -> None:
    ET.indent(root, space="  ")
    declaration = '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    path.write_text(declaration + ET.tostring(root, encoding="unicode") + "\n", encoding="utf-8")


def _number(value: float) -> str:
    """A coordinate as the metadata writes it: 499980, 5400000, 12.5."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _physical_band(band: str) -> str:
    return band if band == "B8A" else f"B{int(band[1:])}"


def _footprint(names: _Names, origin: tuple[float, float], height: int, width: int) -> str:
    """Corners UL, UR, LR, LL, UL as 'lat lon' pairs (EXT_POS_LIST)."""
    x0, y0 = origin
    x1, y1 = x0 + 10 * width, y0 - 10 * height
    lons, lats = warp_transform(
        CRS.from_epsg(names.epsg), CRS.from_epsg(4326), [x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0]
    )
    return " ".join(f"{lat!r} {lon!r}" for lat, lon in zip(lats, lons, strict=True)) + " "


def _earth_sun_factor(moment: dt.datetime) -> float:
    """Reflectance_Conversion/U: 1 / d^2 with d the Earth-Sun distance in AU (ESA's formula)."""
    day = moment.timetuple().tm_yday
    return 1 / (1 - 0.01673 * math.cos(0.0172 * (day - 4))) ** 2


def _user_product_xml(
    names: _Names, image_files: list[str], footprint: str, scl_percent: dict[str, float] | None
) -> ET.Element:
    level = names.level
    schema = f"User_Product_Level-{level[1:]}.xsd"
    root = _root(f"Level-{level[1:]}_User_Product", schema)
    general = _n1(root, schema, "General_Info")
    info = _sub(general, "Product_Info")
    _sub(info, "PRODUCT_START_TIME", _iso(names.sensing))
    _sub(info, "PRODUCT_STOP_TIME", _iso(names.sensing))
    _sub(info, "PRODUCT_URI", names.product + ".SAFE")
    _sub(info, "PROCESSING_LEVEL", f"Level-{level[1:]}")
    _sub(info, "PRODUCT_TYPE", f"S2MSI{level[1:]}")
    _sub(info, "PROCESSING_BASELINE", names.baseline)
    if has_offset(names.baseline):
        _sub(info, "PRODUCT_DOI", _DOI[level])
    _sub(info, "GENERATION_TIME", _iso(names.generation, micro=True))
    _sub(info, "PREVIEW_IMAGE_URL", "Not applicable")
    _sub(info, "PREVIEW_GEO_INFO", "Not applicable")
    datatake = _sub(info, "Datatake", datatakeIdentifier=names.datatake_id)
    _sub(datatake, "SPACECRAFT_NAME", f"Sentinel-{SPACECRAFT[1:]}")
    _sub(datatake, "DATATAKE_TYPE", "INS-NOBS")
    _sub(datatake, "DATATAKE_SENSING_START", _iso(names.sensing))
    _sub(datatake, "SENSING_ORBIT_NUMBER", names.relative_orbit)
    _sub(datatake, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    _sub(_sub(info, "Query_Options", completeSingleTile="true"), "PRODUCT_FORMAT", "SAFE_COMPACT")
    granules = _sub(_sub(info, "Product_Organisation"), "Granule_List")
    granule = _sub(
        granules,
        "Granule",
        datastripIdentifier=names.datastrip_id,
        granuleIdentifier=names.granule_id,
        imageFormat="JPEG2000",
    )
    for image_file in image_files:
        _sub(granule, "IMAGE_FILE", image_file)

    characteristics = _sub(general, "Product_Image_Characteristics")
    for text, index in (("NODATA", 0), ("SATURATED", 65535)):
        special = _sub(characteristics, "Special_Values")
        _sub(special, "SPECIAL_VALUE_TEXT", text)
        _sub(special, "SPECIAL_VALUE_INDEX", index)
    order = _sub(characteristics, "Image_Display_Order")
    for channel, band_id in (("RED", 3), ("GREEN", 2), ("BLUE", 1)):
        _sub(order, f"{channel}_CHANNEL", band_id)
    if level == "L1C":
        _sub(characteristics, "QUANTIFICATION_VALUE", QUANTIFICATION, unit="none")
        offsets, offset_tag = ("Radiometric_Offset_List", "RADIO_ADD_OFFSET")
    else:
        values = _sub(characteristics, "QUANTIFICATION_VALUES_LIST")
        _sub(values, "BOA_QUANTIFICATION_VALUE", QUANTIFICATION, unit="none")
        _sub(values, "AOT_QUANTIFICATION_VALUE", "1000.0", unit="none")
        _sub(values, "WVP_QUANTIFICATION_VALUE", "1000.0", unit="cm")
        offsets, offset_tag = ("BOA_ADD_OFFSET_VALUES_LIST", "BOA_ADD_OFFSET")
    if has_offset(names.baseline):
        offset_list = _sub(characteristics, offsets)
        for band_id in range(len(ESA_BANDS)):
            _sub(offset_list, offset_tag, BASELINE_OFFSET, band_id=band_id)
    conversion = _sub(characteristics, "Reflectance_Conversion")
    _sub(conversion, "U", repr(_earth_sun_factor(names.sensing)))
    irradiance = _sub(conversion, "Solar_Irradiance_List")
    for band_id, value in enumerate(_SOLAR_IRRADIANCE):
        _sub(irradiance, "SOLAR_IRRADIANCE", value, bandId=band_id, unit="W/m²/µm")
    spectral = _sub(characteristics, "Spectral_Information_List")
    for band_id, band in enumerate(ESA_BANDS):
        information = _sub(spectral, "Spectral_Information", bandId=band_id, physicalBand=_physical_band(band))
        _sub(information, "RESOLUTION", NATIVE_RESOLUTION[band])
        wavelength = _sub(information, "Wavelength")
        for tag, value in zip(("MIN", "MAX", "CENTRAL"), _WAVELENGTH[band_id], strict=True):
            _sub(wavelength, tag, value, unit="nm")
    if level == "L1C":
        _sub(characteristics, "REFERENCE_BAND", 0)
    else:
        classes = _sub(characteristics, "Scene_Classification_List")
        for index, name in enumerate(SCL_CLASSES):
            scene_class = _sub(classes, "Scene_Classification_ID")
            _sub(scene_class, "SCENE_CLASSIFICATION_TEXT", f"SC_{name}")
            _sub(scene_class, "SCENE_CLASSIFICATION_INDEX", index)

    geometric = _n1(root, schema, "Geometric_Info")
    product_footprint = _sub(geometric, "Product_Footprint")
    _sub(_sub(_sub(product_footprint, "Product_Footprint"), "Global_Footprint"), "EXT_POS_LIST", footprint)
    _sub(product_footprint, "RASTER_CS_TYPE", "POINT")
    _sub(product_footprint, "PIXEL_ORIGIN", 1)
    crs = _sub(geometric, "Coordinate_Reference_System")
    _sub(crs, "GEO_TABLES", "EPSG", version="1")
    _sub(crs, "HORIZONTAL_CS_TYPE", "GEOGRAPHIC")

    quality = _n1(root, schema, "Quality_Indicators_Info")
    cloudy = 0.0 if scl_percent is None else sum(scl_percent[k] for k in SCL_CLASSES[8:11])
    _sub(quality, "Cloud_Coverage_Assessment", f"{cloudy:.6f}")
    technical = _sub(quality, "Technical_Quality_Assessment")
    _sub(technical, "DEGRADED_ANC_DATA_PERCENTAGE", "0.0")
    _sub(technical, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    inspections = _sub(_sub(quality, "Quality_Control_Checks"), "Quality_Inspections")
    checks = ["FORMAT_CORRECTNESS", "GENERAL_QUALITY", "GEOMETRIC_QUALITY", "RADIOMETRIC_QUALITY", "SENSOR_QUALITY"]
    for check in sorted(checks + (["L2A_QUALITY"] if level == "L2A" else [])):
        _sub(inspections, "quality_check", "PASSED", checkType=check)
    if scl_percent is not None:
        content = _sub(quality, "Image_Content_QI")
        for name, percent in scl_percent.items():
            tag = {"NODATA": "NODATA_PIXEL", "CLOUD_MEDIUM_PROBA": "MEDIUM_PROBA_CLOUDS"}.get(name, name)
            tag = {"CLOUD_HIGH_PROBA": "HIGH_PROBA_CLOUDS", "DARK_FEATURE_SHADOW": "DARK_FEATURES"}.get(tag, tag)
            _sub(content, f"{tag}_PERCENTAGE", f"{percent:.6f}")
        _sub(content, "GRANULE_MEAN_AOT", f"{AOT_DN / 1000:.6f}")
        _sub(content, "GRANULE_MEAN_WV", f"{WVP_DN / 1000:.6f}")
    return root


def _tile_xml(
    names: _Names, origin: tuple[float, float], height: int, width: int, scl_percent: dict[str, float] | None
) -> ET.Element:
    level = names.level
    schema = f"S2_PDI_Level-{level[1:]}_Tile_Metadata.xsd"
    root = _root(f"Level-{level[1:]}_Tile_ID", schema)
    general = _n1(root, schema, "General_Info")
    if level == "L2A":
        _sub(general, "L1C_TILE_ID", names.l1c_granule_id, metadataLevel="Brief")
    _sub(general, "TILE_ID", names.granule_id, metadataLevel="Brief")
    _sub(general, "DATASTRIP_ID", names.datastrip_id, metadataLevel="Standard")
    _sub(general, "DOWNLINK_PRIORITY", "NOMINAL", metadataLevel="Standard")
    _sub(general, "SENSING_TIME", _iso(names.sensing), metadataLevel="Standard")
    archiving = _sub(general, "Archiving_Info", metadataLevel="Expertise")
    _sub(archiving, "ARCHIVING_CENTRE", _CENTRE)
    _sub(archiving, "ARCHIVING_TIME", _iso(names.generation, micro=True))
    geometric = _n1(root, schema, "Geometric_Info")
    geocoding = _sub(geometric, "Tile_Geocoding", metadataLevel="Brief")
    zone, hemisphere = names.epsg % 100, "N" if names.epsg < 32700 else "S"
    _sub(geocoding, "HORIZONTAL_CS_NAME", f"WGS84 / UTM zone {zone}{hemisphere}")
    _sub(geocoding, "HORIZONTAL_CS_CODE", f"EPSG:{names.epsg}")
    for res in (10, 20, 60):
        size = _sub(geocoding, "Size", resolution=res)
        _sub(size, "NROWS", height * 10 // res)
        _sub(size, "NCOLS", width * 10 // res)
    for res in (10, 20, 60):
        position = _sub(geocoding, "Geoposition", resolution=res)
        _sub(position, "ULX", _number(origin[0]))
        _sub(position, "ULY", _number(origin[1]))
        _sub(position, "XDIM", res)
        _sub(position, "YDIM", -res)
    angles = _sub(geometric, "Tile_Angles", metadataLevel="Standard")
    sun = _sub(angles, "Mean_Sun_Angle")
    _sub(sun, "ZENITH_ANGLE", "35.0", unit="deg")
    _sub(sun, "AZIMUTH_ANGLE", "150.0", unit="deg")
    quality = _n1(root, schema, "Quality_Indicators_Info")
    quality.set("metadataLevel", "Standard")
    content = _sub(quality, "Image_Content_QI")
    cloudy = 0.0 if scl_percent is None else sum(scl_percent[k] for k in SCL_CLASSES[8:11])
    _sub(content, "CLOUDY_PIXEL_PERCENTAGE", f"{cloudy:.6f}")
    _sub(content, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    return root


def _datastrip_xml(names: _Names) -> ET.Element:
    level = names.level
    schema = f"S2_PDI_Level-{level[1:]}_Datastrip_Metadata.xsd"
    root = _root(f"Level-{level[1:]}_DataStrip_ID", schema)
    general = _n1(root, schema, "General_Info")
    info = _sub(general, "Datastrip_Time_Info")
    _sub(info, "DATASTRIP_SENSING_START", _iso(names.datastrip_start))
    _sub(info, "DATASTRIP_SENSING_STOP", _iso(names.sensing))
    _sub(general, "DATASTRIP_ID", names.datastrip_id)
    _sub(general, "SPACECRAFT_NAME", f"Sentinel-{SPACECRAFT[1:]}")
    _sub(general, "PROCESSING_BASELINE", names.baseline)
    return root


def _manifest_xml(names: _Names, safe: Path, footprint: str) -> ET.Element:
    """manifest.safe: an XFDU with one data object (size, SHA3-256) per file of the product."""
    xfdu, safe_ns = "urn:ccsds:schema:xfdu:1", "http://www.esa.int/safe/sentinel/1.1"
    ET.register_namespace("xfdu", xfdu)
    ET.register_namespace("safe", safe_ns)
    ET.register_namespace("gml", "http://www.opengis.net/gml")
    kind = "archive_l1c_user_product" if names.level == "L1C" else "archive_l2a_user_product"
    root = ET.Element(f"{{{xfdu}}}XFDU", version=f"esa/safe/sentinel/1.1/sentinel-2/msi/{kind}")
    files = sorted(p for p in safe.rglob("*") if p.is_file() and p.name != "manifest.safe")
    unit = ET.SubElement(
        _sub(root, "informationPackageMap"),
        f"{{{xfdu}}}contentUnit",
        unitType=f"Product_Level-{names.level[1:]}",
        textInfo=f"SENTINEL-2 MSI Level-{names.level[1:]} User Product",
        dmdID="acquisitionPeriod platform",
        pdiID="processing",
    )
    ids = [re.sub(r"[^A-Za-z0-9_.-]", "_", str(p.relative_to(safe))) for p in files]
    for object_id in ids:
        child = ET.SubElement(unit, f"{{{xfdu}}}contentUnit", ID=f"{object_id}_Unit", unitType="Data Unit")
        _sub(child, "dataObjectPointer", dataObjectID=object_id)
    metadata = _sub(root, "metadataSection")
    for object_id, category, classification, element in (
        ("acquisitionPeriod", "DMD", "DESCRIPTION", "acquisitionPeriod"),
        ("platform", "DMD", "DESCRIPTION", "platform"),
        ("processing", "PDI", "PROVENANCE", "processing"),
        ("measurementFrameSet", "DMD", "DESCRIPTION", "frameSet"),
    ):
        wrap = _sub(
            _sub(metadata, "metadataObject", ID=object_id, category=category, classification=classification),
            "metadataWrap",
            mimeType="text/xml",
            vocabularyName="Sentinel-SAFE",
        )
        content = ET.SubElement(_sub(wrap, "xmlData"), f"{{{safe_ns}}}{element}")
        if element == "acquisitionPeriod":
            ET.SubElement(content, f"{{{safe_ns}}}startTime").text = _iso(names.sensing)
        elif element == "platform":
            ET.SubElement(content, f"{{{safe_ns}}}familyName").text = "SENTINEL"
            ET.SubElement(content, f"{{{safe_ns}}}number").text = SPACECRAFT[1:]
        elif element == "processing":
            content.set("name", f"Generation of Level-{names.level[1:]} User Product")
            content.set("start", _iso(names.generation, micro=True))
        else:
            frame = ET.SubElement(content, f"{{{safe_ns}}}footPrint")
            frame.set("srsName", "http://www.opengis.net/gml/srs/epsg.xml#4326")
            ET.SubElement(frame, "{http://www.opengis.net/gml}coordinates").text = footprint
    objects = _sub(root, "dataObjectSection")
    for object_id, path in zip(ids, files, strict=True):
        stream = _sub(
            _sub(objects, "dataObject", ID=object_id),
            "byteStream",
            mimeType="text/xml" if path.suffix == ".xml" else "application/octet-stream",
            size=path.stat().st_size,
        )
        _sub(stream, "fileLocation", href=f"./{path.relative_to(safe).as_posix()}", locatorType="URL")
        digest = hashlib.sha3_256()
        with path.open("rb") as stream_in:
            while block := stream_in.read(1 << 22):
                digest.update(block)
        _sub(stream, "checksum", digest.hexdigest(), checksumName="SHA3-256")
    return root


# ---------------------------------------------------------------------------------------------- writing


def _write_jp2(path: Path, data: np.ndarray, res: int, epsg: int, origin: tuple[float, float], blocksize: int) -> None:
    """One lossless, tiled JPEG 2000 file as the ground segment writes them (GDAL's JP2OpenJPEG driver)."""
    pixels = data if data.ndim == 3 else data[None]
    with rasterio.open(
        path,
        "w",
        driver="JP2OpenJPEG",
        width=pixels.shape[2],
        height=pixels.shape[1],
        count=pixels.shape[0],
        dtype=pixels.dtype,
        crs=CRS.from_epsg(epsg),
        transform=from_origin(origin[0], origin[1], res, res),
        REVERSIBLE="YES",
        QUALITY="100",
        BLOCKXSIZE=str(blocksize),
        BLOCKYSIZE=str(blocksize),
    ) as dst:
        dst.write(pixels)


def _grid(native: dict[str, np.ndarray]) -> tuple[int, int]:
    """The product's size on the 10 m grid, checked against every band's native resolution."""
    grids = set()
    for band, array in native.items():
        if band not in NATIVE_RESOLUTION:
            raise ValueError(f"write_product: unknown band {band!r}; bands are {', '.join(ESA_BANDS)}")
        if array.dtype != np.uint16 or array.ndim != 2:
            raise ValueError(f"write_product: {band} must be a 2-D uint16 array, got {array.dtype} {array.shape}")
        factor = NATIVE_RESOLUTION[band] // 10
        grids.add((array.shape[0] * factor, array.shape[1] * factor))
    if not grids:
        raise ValueError("write_product: native holds no band to write")
    if len(grids) > 1:
        raise ValueError(
            f"write_product: the bands' native shapes imply different 10 m grids {sorted(grids)}; "
            "give each band at its native resolution (native_bands() makes them)"
        )
    height, width = grids.pop()
    if height % 6 or width % 6:
        raise ValueError(f"write_product: the 10 m grid {height} x {width} must be a multiple of 6 each way")
    return height, width


def _at(native: dict[str, np.ndarray], band: str, res: int) -> np.ndarray | None:
    """``band`` resampled from its native resolution to ``res`` (means going coarser, nearest going finer)."""
    if band not in native:
        return None
    have = NATIVE_RESOLUTION[band]
    if res == have:
        return native[band]
    return _block_mean(native[band], res // have) if res > have else _repeat(native[band], have // res)


def _valid(arrays: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Pixels that hold data in every band given (all of them when none is)."""
    valid = np.ones(shape, bool)
    for array in arrays:
        valid &= array != 0
    return valid


def _default_scl(native: dict[str, np.ndarray], valid20: np.ndarray, offset: int) -> np.ndarray:
    """A plausible 20 m scene classification: vegetation where NDVI (B8A, B04) > 0.3, else not vegetated;
    no data where the bands have none."""
    scl = np.full(valid20.shape, 4, np.uint8)
    red, nir = _at(native, "B04", 20), _at(native, "B8A", 20)
    if red is not None and nir is not None:
        r = red.astype(np.float32) + offset
        n = nir.astype(np.float32) + offset
        scl[(n - r) <= 0.3 * (n + r)] = 5
    scl[~valid20] = 0
    return scl


def _scl_percent(scl: np.ndarray) -> dict[str, float]:
    counts = np.bincount(scl.ravel(), minlength=len(SCL_CLASSES))[: len(SCL_CLASSES)]
    data = max(int(counts[1:].sum()), 1)
    percent = {"NODATA": 100 * counts[0] / scl.size}
    percent |= {name: 100 * counts[i] / data for i, name in enumerate(SCL_CLASSES) if i}
    return {name: float(value) for name, value in percent.items()}


def _preview(tci: np.ndarray) -> np.ndarray:
    """PVI: the 10 m TCI sampled every 32 pixels (343 x 343 for a full tile)."""
    rows = np.minimum(np.arange(max(1, tci.shape[1] // 32)) * 32 + 16, tci.shape[1] - 1)
    cols = np.minimum(np.arange(max(1, tci.shape[2] // 32)) * 32 + 16, tci.shape[2] - 1)
    return np.ascontiguousarray(tci[:, rows][:, :, cols])


def _write_safe(
    safe: Path,
    names: _Names,
    native: dict[str, np.ndarray],
    scl: np.ndarray | None,
    origin: tuple[float, float],
    blocksize: int,
) -> None:
    """Every file of the product into the (empty) folder ``safe``."""
    height, width = _grid(native)
    offset = BASELINE_OFFSET if has_offset(names.baseline) else 0
    granule = safe / "GRANULE" / names.granule
    img_data, qi_data = granule / "IMG_DATA", granule / "QI_DATA"
    for folder in (safe / "AUX_DATA", safe / "HTML", safe / "rep_info", granule / "AUX_DATA", qi_data):
        folder.mkdir(parents=True, exist_ok=True)
    (safe / "DATASTRIP" / names.datastrip_dir / "QI_DATA").mkdir(parents=True)
    image_files: list[str] = []

    def write(name: str, res: int, data: np.ndarray, folder: Path = img_data) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        _write_jp2(folder / f"{name}.jp2", data, res, names.epsg, origin, blocksize)
        if folder.is_relative_to(img_data):
            image_files.append((folder / name).relative_to(safe).as_posix())

    scl_percent = None
    tci10 = None
    if names.level == "L1C":
        for band in ESA_BANDS:
            if band in native:
                write(f"{names.band_prefix}_{band}", NATIVE_RESOLUTION[band], native[band])
        if all(band in native for band in ("B04", "B03", "B02")):
            tci10 = _true_colour(native["B04"], native["B03"], native["B02"], offset)
            write(f"{names.band_prefix}_TCI", 10, tci10)
    else:
        shape20 = (height // 2, width // 2)
        valid20 = _valid([a for b in native if b != "B10" and (a := _at(native, b, 20)) is not None], shape20)
        if scl is None:
            scl = _default_scl(native, valid20, offset)
        scl_by_res = {20: scl, 60: _block_mode(scl, 3)}
        scl_percent = _scl_percent(scl)
        for res, layout in L2A_LAYOUT.items():
            shape = (height * 10 // res, width * 10 // res)
            spectral = {band: array for band in layout if (array := _at(native, band, res)) is not None}
            valid = _valid(list(spectral.values()), shape)
            folder = img_data / f"R{res}m"
            for name in layout:
                if name in spectral:
                    data = spectral[name]
                elif name == "TCI" and all(band in spectral for band in ("B04", "B03", "B02")):
                    data = _true_colour(spectral["B04"], spectral["B03"], spectral["B02"], offset)
                    tci10 = data if res == 10 else tci10
                elif name in ("AOT", "WVP"):
                    data = np.where(valid, np.uint16(AOT_DN if name == "AOT" else WVP_DN), np.uint16(0))
                elif name == "SCL":
                    data = scl_by_res[res]
                else:
                    continue
                write(f"{names.band_prefix}_{name}_{res}m", res, data, folder)
            if res in scl_by_res:
                classes = scl_by_res[res]
                cloud = np.select([classes == 9, classes == 8, classes == 10], [90, 50, 20], 0).astype(np.uint8)
                write(f"MSK_CLDPRB_{res}m", res, cloud, qi_data)
                write(f"MSK_SNWPRB_{res}m", res, ((classes == 11) * np.uint8(100)).astype(np.uint8), qi_data)
    if tci10 is not None:
        write(f"{names.band_prefix}_PVI", 320, _preview(tci10), qi_data)

    footprint = _footprint(names, origin, height, width)
    _write_xml(safe / f"MTD_MSI{names.level}.xml", _user_product_xml(names, image_files, footprint, scl_percent))
    _write_xml(granule / "MTD_TL.xml", _tile_xml(names, origin, height, width, scl_percent))
    _write_xml(safe / "DATASTRIP" / names.datastrip_dir / "MTD_DS.xml", _datastrip_xml(names))
    _write_xml(safe / "manifest.safe", _manifest_xml(names, safe, footprint))


def _zip_safe(safe: Path, name: str, target: Path, when: dt.datetime) -> None:
    """``safe`` as ``<name>.SAFE/...`` in the zip ``target``: folders as entries, JPEG 2000 stored, the rest
    deflated, sorted, every entry stamped ``when`` (so the same product zips to the same bytes)."""
    stamp = when.timetuple()[:6]
    paths = sorted(safe.rglob("*"), key=lambda p: p.relative_to(safe).as_posix())
    with zipfile.ZipFile(target, "w", allowZip64=True) as archive:
        for path in [safe, *paths]:
            arcname = f"{name}.SAFE/" + (path.relative_to(safe).as_posix() if path != safe else "")
            if path.is_dir():
                info = zipfile.ZipInfo(arcname.rstrip("/") + "/", stamp)
                info.external_attr = (0o40755 << 16) | 0x10
                archive.writestr(info, b"")
                continue
            info = zipfile.ZipInfo(arcname, stamp)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED if path.suffix == ".jp2" else zipfile.ZIP_DEFLATED
            info.file_size = path.stat().st_size
            with path.open("rb") as source, archive.open(info, "w", force_zip64=info.file_size > 1 << 31) as sink:
                shutil.copyfileobj(source, sink, 1 << 22)


def write_product(
    root: Path,
    native: dict[str, np.ndarray],
    level: Literal["L1C", "L2A"] = "L2A",
    baseline: str = "05.09",
    scl: np.ndarray | None = None,
    as_zip: bool = False,
    tile: str = "T32UMU",
    sensing: str = "20230615T103031",
    origin: tuple[float, float] = (499980.0, 5400000.0),
    blocksize: int = 1024,
) -> Path:
    """Write a Sentinel-2 ``level`` product from ``native`` (band -> uint16 DN at the band's native resolution,
    offset included) into ``root``; return its ``.SAFE`` folder, or with ``as_zip`` its ``.zip`` (no folder).

    L1C: every given band in ``IMG_DATA/`` plus TCI. L2A: ``IMG_DATA/R10m|R20m|R60m/`` as ESA lays them out
    (bands resampled by block means, B01 at 20 m by repetition; no B10), TCI, constant AOT and WVP, SCL
    (``scl`` at 20 m, or one from NDVI; 60 m by block mode) and the cloud/snow probability masks. Baselines from
    04.00 list the -1000 offset of every band. Bands missing from ``native`` are not written. The product is
    built under a temporary name and renamed, so an interrupted write never leaves one that looks complete;
    an existing product of the same name is replaced."""
    if level not in ("L1C", "L2A"):
        raise ValueError(f"level={level!r}: give 'L1C' or 'L2A'")
    if level == "L2A":
        native = {band: array for band, array in native.items() if band != "B10"}
        if scl is not None:
            height, width = _grid(native)
            if scl.dtype != np.uint8 or scl.shape != (height // 2, width // 2) or scl.max(initial=0) > 11:
                raise ValueError(
                    f"write_product: scl must be uint8 classes 0..11 at 20 m, shape {(height // 2, width // 2)}; "
                    f"got {scl.dtype} {scl.shape}"
                )
    elif scl is not None:
        raise ValueError("write_product: scl (scene classification) belongs to L2A products, not L1C")
    if blocksize < 32:
        raise ValueError(f"write_product: blocksize={blocksize} is too small for JPEG 2000 tiles (>= 32)")
    names = _Names(level, baseline, tile, sensing)
    _grid(native)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{names.product}.SAFE.tmp", dir=root))
    try:
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
            _write_safe(staging, names, native, scl, origin, blocksize)
        if as_zip:
            target = root / f"{names.product}.zip"
            handle, partial = tempfile.mkstemp(prefix=f"{names.product}.zip.tmp", dir=root)
            os.close(handle)
            try:
                _zip_safe(staging, names.product, Path(partial), names.generation)
                os.replace(partial, target)
            finally:
                Path(partial).unlink(missing_ok=True)
            return target
        target = root / f"{names.product}.SAFE"
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{names.product}.SAFE.old", dir=root))
            os.replace(target, old / "product")
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)
