"""manifest.safe: the product's table of contents (an XFDU), one data object (size, SHA3-256) per file."""

import hashlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from fakes.sentinel2.naming import SPACECRAFT, ProductNames
from fakes.sentinel2.xml_elements import iso_time, sub_element


def manifest_xml(names: ProductNames, safe: Path, footprint: str) -> ET.Element:
    """manifest.safe: an XFDU with one data object (size, SHA3-256) per file of the product."""
    xfdu, safe_ns = "urn:ccsds:schema:xfdu:1", "http://www.esa.int/safe/sentinel/1.1"
    ET.register_namespace("xfdu", xfdu)
    ET.register_namespace("safe", safe_ns)
    ET.register_namespace("gml", "http://www.opengis.net/gml")
    kind = "archive_l1c_user_product" if names.level == "L1C" else "archive_l2a_user_product"
    root = ET.Element(f"{{{xfdu}}}XFDU", version=f"esa/safe/sentinel/1.1/sentinel-2/msi/{kind}")
    files = sorted(p for p in safe.rglob("*") if p.is_file() and p.name != "manifest.safe")
    unit = ET.SubElement(
        sub_element(root, "informationPackageMap"),
        f"{{{xfdu}}}contentUnit",
        unitType=f"Product_Level-{names.level[1:]}",
        textInfo=f"SENTINEL-2 MSI Level-{names.level[1:]} User Product",
        dmdID="acquisitionPeriod platform",
        pdiID="processing",
    )
    ids = [re.sub(r"[^A-Za-z0-9_.-]", "_", str(p.relative_to(safe))) for p in files]
    for object_id in ids:
        child = ET.SubElement(unit, f"{{{xfdu}}}contentUnit", ID=f"{object_id}_Unit", unitType="Data Unit")
        sub_element(child, "dataObjectPointer", dataObjectID=object_id)
    metadata = sub_element(root, "metadataSection")
    for object_id, category, classification, element in (
        ("acquisitionPeriod", "DMD", "DESCRIPTION", "acquisitionPeriod"),
        ("platform", "DMD", "DESCRIPTION", "platform"),
        ("processing", "PDI", "PROVENANCE", "processing"),
        ("measurementFrameSet", "DMD", "DESCRIPTION", "frameSet"),
    ):
        wrap = sub_element(
            sub_element(metadata, "metadataObject", ID=object_id, category=category, classification=classification),
            "metadataWrap",
            mimeType="text/xml",
            vocabularyName="Sentinel-SAFE",
        )
        content = ET.SubElement(sub_element(wrap, "xmlData"), f"{{{safe_ns}}}{element}")
        if element == "acquisitionPeriod":
            ET.SubElement(content, f"{{{safe_ns}}}startTime").text = iso_time(names.sensing)
        elif element == "platform":
            ET.SubElement(content, f"{{{safe_ns}}}familyName").text = "SENTINEL"
            ET.SubElement(content, f"{{{safe_ns}}}number").text = SPACECRAFT[1:]
        elif element == "processing":
            content.set("name", f"Generation of Level-{names.level[1:]} User Product")
            content.set("start", iso_time(names.generation, micro=True))
        else:
            frame = ET.SubElement(content, f"{{{safe_ns}}}footPrint")
            frame.set("srsName", "http://www.opengis.net/gml/srs/epsg.xml#4326")
            ET.SubElement(frame, "{http://www.opengis.net/gml}coordinates").text = footprint
    objects = sub_element(root, "dataObjectSection")
    for object_id, path in zip(ids, files, strict=True):
        stream = sub_element(
            sub_element(objects, "dataObject", ID=object_id),
            "byteStream",
            mimeType="text/xml" if path.suffix == ".xml" else "application/octet-stream",
            size=path.stat().st_size,
        )
        sub_element(stream, "fileLocation", href=f"./{path.relative_to(safe).as_posix()}", locatorType="URL")
        digest = hashlib.sha3_256()
        with path.open("rb") as stream_in:
            while block := stream_in.read(1 << 22):
                digest.update(block)
        sub_element(stream, "checksum", digest.hexdigest(), checksumName="SHA3-256")
    return root
