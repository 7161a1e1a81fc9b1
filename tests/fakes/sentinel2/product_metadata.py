"""MTD_MSIL1C.xml / MTD_MSIL2A.xml, the user product's metadata: product and datatake, the granule's image files,
quantification and offsets, spectral information, the footprint and the quality indicators."""

import datetime as dt
import math
import xml.etree.ElementTree as ET

from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform

from eurosat_finetune.data.bands import ESA_BANDS, NATIVE_RESOLUTION
from fakes.sentinel2.naming import SPACECRAFT, ProductNames, has_offset
from fakes.sentinel2.specification import (
    AOT_DN,
    BASELINE_OFFSET,
    QUANTIFICATION,
    SCL_CLASSES,
    WVP_DN,
)
from fakes.sentinel2.xml_elements import iso_time, psd_child, psd_root, sub_element

_DOI = {"L1C": "https://doi.org/10.5270/S2_-742ikth", "L2A": "https://doi.org/10.5270/S2_-znk9xsj"}
# Sentinel-2A spectral response summary (nm: min, max, central) and solar irradiance (W/m2/um), per band_id.
_WAVELENGTH = (
    (411, 456, 442.7), (456, 533, 492.7), (538, 583, 559.8), (646, 684, 664.6), (694, 713, 704.1),
    (731, 749, 740.5), (769, 797, 782.8), (760, 908, 832.8), (848, 881, 864.7), (932, 958, 945.1),
    (1337, 1412, 1373.5), (1539, 1682, 1613.7), (2078, 2320, 2202.4),
)  # fmt: skip
_SOLAR_IRRADIANCE = (
    1884.69, 1959.72, 1823.24, 1512.06, 1424.64, 1287.61, 1162.08, 1041.63, 955.32, 812.92, 367.15, 245.59, 85.25,
)  # fmt: skip


def _physical_band(band: str) -> str:
    return band if band == "B8A" else f"B{int(band[1:])}"


def lat_lon_footprint(names: ProductNames, origin: tuple[float, float], height: int, width: int) -> str:
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


def user_product_xml(
    names: ProductNames,
    image_files: list[str],
    footprint: str,
    scl_percent: dict[str, float] | None,
    quantification: int = QUANTIFICATION,
) -> ET.Element:
    """MTD_MSIL1C.xml or MTD_MSIL2A.xml, listing ``image_files``, with ``quantification``; L2A's quality
    indicators from ``scl_percent``."""
    level = names.level
    schema = f"User_Product_Level-{level[1:]}.xsd"
    root = psd_root(f"Level-{level[1:]}_User_Product", schema)
    general = psd_child(root, schema, "General_Info")
    info = sub_element(general, "Product_Info")
    sub_element(info, "PRODUCT_START_TIME", iso_time(names.sensing))
    sub_element(info, "PRODUCT_STOP_TIME", iso_time(names.sensing))
    sub_element(info, "PRODUCT_URI", names.product + ".SAFE")
    sub_element(info, "PROCESSING_LEVEL", f"Level-{level[1:]}")
    sub_element(info, "PRODUCT_TYPE", f"S2MSI{level[1:]}")
    sub_element(info, "PROCESSING_BASELINE", names.baseline)
    if has_offset(names.baseline):
        sub_element(info, "PRODUCT_DOI", _DOI[level])
    sub_element(info, "GENERATION_TIME", iso_time(names.generation, micro=True))
    sub_element(info, "PREVIEW_IMAGE_URL", "Not applicable")
    sub_element(info, "PREVIEW_GEO_INFO", "Not applicable")
    datatake = sub_element(info, "Datatake", datatakeIdentifier=names.datatake_id)
    sub_element(datatake, "SPACECRAFT_NAME", f"Sentinel-{SPACECRAFT[1:]}")
    sub_element(datatake, "DATATAKE_TYPE", "INS-NOBS")
    sub_element(datatake, "DATATAKE_SENSING_START", iso_time(names.sensing))
    sub_element(datatake, "SENSING_ORBIT_NUMBER", names.relative_orbit)
    sub_element(datatake, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    sub_element(sub_element(info, "Query_Options", completeSingleTile="true"), "PRODUCT_FORMAT", "SAFE_COMPACT")
    granules = sub_element(sub_element(info, "Product_Organisation"), "Granule_List")
    granule = sub_element(
        granules,
        "Granule",
        datastripIdentifier=names.datastrip_id,
        granuleIdentifier=names.granule_id,
        imageFormat="JPEG2000",
    )
    for image_file in image_files:
        sub_element(granule, "IMAGE_FILE", image_file)

    characteristics = sub_element(general, "Product_Image_Characteristics")
    for text, index in (("NODATA", 0), ("SATURATED", 65535)):
        special = sub_element(characteristics, "Special_Values")
        sub_element(special, "SPECIAL_VALUE_TEXT", text)
        sub_element(special, "SPECIAL_VALUE_INDEX", index)
    order = sub_element(characteristics, "Image_Display_Order")
    for channel, band_id in (("RED", 3), ("GREEN", 2), ("BLUE", 1)):
        sub_element(order, f"{channel}_CHANNEL", band_id)
    if level == "L1C":
        sub_element(characteristics, "QUANTIFICATION_VALUE", quantification, unit="none")
        offsets, offset_tag = ("Radiometric_Offset_List", "RADIO_ADD_OFFSET")
    else:
        values = sub_element(characteristics, "QUANTIFICATION_VALUES_LIST")
        sub_element(values, "BOA_QUANTIFICATION_VALUE", quantification, unit="none")
        sub_element(values, "AOT_QUANTIFICATION_VALUE", "1000.0", unit="none")
        sub_element(values, "WVP_QUANTIFICATION_VALUE", "1000.0", unit="cm")
        offsets, offset_tag = ("BOA_ADD_OFFSET_VALUES_LIST", "BOA_ADD_OFFSET")
    if has_offset(names.baseline):
        offset_list = sub_element(characteristics, offsets)
        for band_id in range(len(ESA_BANDS)):
            sub_element(offset_list, offset_tag, BASELINE_OFFSET, band_id=band_id)
    conversion = sub_element(characteristics, "Reflectance_Conversion")
    sub_element(conversion, "U", repr(_earth_sun_factor(names.sensing)))
    irradiance = sub_element(conversion, "Solar_Irradiance_List")
    for band_id, value in enumerate(_SOLAR_IRRADIANCE):
        sub_element(irradiance, "SOLAR_IRRADIANCE", value, bandId=band_id, unit="W/m²/µm")
    spectral = sub_element(characteristics, "Spectral_Information_List")
    for band_id, band in enumerate(ESA_BANDS):
        information = sub_element(spectral, "Spectral_Information", bandId=band_id, physicalBand=_physical_band(band))
        sub_element(information, "RESOLUTION", NATIVE_RESOLUTION[band])
        wavelength = sub_element(information, "Wavelength")
        for tag, value in zip(("MIN", "MAX", "CENTRAL"), _WAVELENGTH[band_id], strict=True):
            sub_element(wavelength, tag, value, unit="nm")
    if level == "L1C":
        sub_element(characteristics, "REFERENCE_BAND", 0)
    else:
        classes = sub_element(characteristics, "Scene_Classification_List")
        for index, name in enumerate(SCL_CLASSES):
            scene_class = sub_element(classes, "Scene_Classification_ID")
            sub_element(scene_class, "SCENE_CLASSIFICATION_TEXT", f"SC_{name}")
            sub_element(scene_class, "SCENE_CLASSIFICATION_INDEX", index)

    geometric = psd_child(root, schema, "Geometric_Info")
    product_footprint = sub_element(geometric, "Product_Footprint")
    global_footprint = sub_element(sub_element(product_footprint, "Product_Footprint"), "Global_Footprint")
    sub_element(global_footprint, "EXT_POS_LIST", footprint)
    sub_element(product_footprint, "RASTER_CS_TYPE", "POINT")
    sub_element(product_footprint, "PIXEL_ORIGIN", 1)
    crs = sub_element(geometric, "Coordinate_Reference_System")
    sub_element(crs, "GEO_TABLES", "EPSG", version="1")
    sub_element(crs, "HORIZONTAL_CS_TYPE", "GEOGRAPHIC")

    quality = psd_child(root, schema, "Quality_Indicators_Info")
    cloudy = 0.0 if scl_percent is None else sum(scl_percent[k] for k in SCL_CLASSES[8:11])
    sub_element(quality, "Cloud_Coverage_Assessment", f"{cloudy:.6f}")
    technical = sub_element(quality, "Technical_Quality_Assessment")
    sub_element(technical, "DEGRADED_ANC_DATA_PERCENTAGE", "0.0")
    sub_element(technical, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    inspections = sub_element(sub_element(quality, "Quality_Control_Checks"), "Quality_Inspections")
    checks = ["FORMAT_CORRECTNESS", "GENERAL_QUALITY", "GEOMETRIC_QUALITY", "RADIOMETRIC_QUALITY", "SENSOR_QUALITY"]
    for check in sorted(checks + (["L2A_QUALITY"] if level == "L2A" else [])):
        sub_element(inspections, "quality_check", "PASSED", checkType=check)
    if scl_percent is not None:
        content = sub_element(quality, "Image_Content_QI")
        for name, percent in scl_percent.items():
            tag = {"NODATA": "NODATA_PIXEL", "CLOUD_MEDIUM_PROBA": "MEDIUM_PROBA_CLOUDS"}.get(name, name)
            tag = {"CLOUD_HIGH_PROBA": "HIGH_PROBA_CLOUDS", "DARK_FEATURE_SHADOW": "DARK_FEATURES"}.get(tag, tag)
            sub_element(content, f"{tag}_PERCENTAGE", f"{percent:.6f}")
        sub_element(content, "GRANULE_MEAN_AOT", f"{AOT_DN / 1000:.6f}")
        sub_element(content, "GRANULE_MEAN_WV", f"{WVP_DN / 1000:.6f}")
    return root
