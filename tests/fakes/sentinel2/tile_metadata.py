"""MTD_TL.xml, the tile's metadata (identifiers, UTM geocoding at 10, 20 and 60 m, sun angles, cloudiness), and
MTD_DS.xml, that of the datastrip the tile was cut from."""

import xml.etree.ElementTree as ET

from fakes.sentinel2.naming import PROCESSING_CENTRE, SPACECRAFT, ProductNames
from fakes.sentinel2.specification import SCL_CLASSES
from fakes.sentinel2.xml_elements import iso_time, psd_child, psd_root, sub_element


def _number(value: float) -> str:
    """A coordinate as the metadata writes it: 499980, 5400000, 12.5."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def tile_xml(
    names: ProductNames, origin: tuple[float, float], height: int, width: int, scl_percent: dict[str, float] | None
) -> ET.Element:
    """MTD_TL.xml: the tile's identifiers, its UTM grid at 10, 20 and 60 m, sun angles and cloudiness."""
    level = names.level
    schema = f"S2_PDI_Level-{level[1:]}_Tile_Metadata.xsd"
    root = psd_root(f"Level-{level[1:]}_Tile_ID", schema)
    general = psd_child(root, schema, "General_Info")
    if level == "L2A":
        sub_element(general, "L1C_TILE_ID", names.l1c_granule_id, metadataLevel="Brief")
    sub_element(general, "TILE_ID", names.granule_id, metadataLevel="Brief")
    sub_element(general, "DATASTRIP_ID", names.datastrip_id, metadataLevel="Standard")
    sub_element(general, "DOWNLINK_PRIORITY", "NOMINAL", metadataLevel="Standard")
    sub_element(general, "SENSING_TIME", iso_time(names.sensing), metadataLevel="Standard")
    archiving = sub_element(general, "Archiving_Info", metadataLevel="Expertise")
    sub_element(archiving, "ARCHIVING_CENTRE", PROCESSING_CENTRE)
    sub_element(archiving, "ARCHIVING_TIME", iso_time(names.generation, micro=True))
    geometric = psd_child(root, schema, "Geometric_Info")
    geocoding = sub_element(geometric, "Tile_Geocoding", metadataLevel="Brief")
    zone, hemisphere = names.epsg % 100, "N" if names.epsg < 32700 else "S"
    sub_element(geocoding, "HORIZONTAL_CS_NAME", f"WGS84 / UTM zone {zone}{hemisphere}")
    sub_element(geocoding, "HORIZONTAL_CS_CODE", f"EPSG:{names.epsg}")
    for res in (10, 20, 60):
        size = sub_element(geocoding, "Size", resolution=res)
        sub_element(size, "NROWS", height * 10 // res)
        sub_element(size, "NCOLS", width * 10 // res)
    for res in (10, 20, 60):
        position = sub_element(geocoding, "Geoposition", resolution=res)
        sub_element(position, "ULX", _number(origin[0]))
        sub_element(position, "ULY", _number(origin[1]))
        sub_element(position, "XDIM", res)
        sub_element(position, "YDIM", -res)
    angles = sub_element(geometric, "Tile_Angles", metadataLevel="Standard")
    sun = sub_element(angles, "Mean_Sun_Angle")
    sub_element(sun, "ZENITH_ANGLE", "35.0", unit="deg")
    sub_element(sun, "AZIMUTH_ANGLE", "150.0", unit="deg")
    quality = psd_child(root, schema, "Quality_Indicators_Info")
    quality.set("metadataLevel", "Standard")
    content = sub_element(quality, "Image_Content_QI")
    cloudy = 0.0 if scl_percent is None else sum(scl_percent[k] for k in SCL_CLASSES[8:11])
    sub_element(content, "CLOUDY_PIXEL_PERCENTAGE", f"{cloudy:.6f}")
    sub_element(content, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    return root


def datastrip_xml(names: ProductNames) -> ET.Element:
    """MTD_DS.xml: the datastrip's identifier, sensing period, spacecraft and processing baseline."""
    level = names.level
    schema = f"S2_PDI_Level-{level[1:]}_Datastrip_Metadata.xsd"
    root = psd_root(f"Level-{level[1:]}_DataStrip_ID", schema)
    general = psd_child(root, schema, "General_Info")
    info = sub_element(general, "Datastrip_Time_Info")
    sub_element(info, "DATASTRIP_SENSING_START", iso_time(names.datastrip_start))
    sub_element(info, "DATASTRIP_SENSING_STOP", iso_time(names.sensing))
    sub_element(general, "DATASTRIP_ID", names.datastrip_id)
    sub_element(general, "SPACECRAFT_NAME", f"Sentinel-{SPACECRAFT[1:]}")
    sub_element(general, "PROCESSING_BASELINE", names.baseline)
    return root
