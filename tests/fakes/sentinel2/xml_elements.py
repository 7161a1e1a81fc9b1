"""The building blocks of the metadata documents: elements with text and attributes, roots in the namespace
of ESA's product specification (PSD 14) schemas, timestamps as ESA writes them, and the written file."""

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

_PSD = "https://psd-14.sentinel2.eo.esa.int/PSD/"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


def iso_time(moment: dt.datetime, micro: bool = False) -> str:
    """A UTC time as the metadata writes it: sensing times to the millisecond, processing times (``micro``) to
    the microsecond."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (".000000Z" if micro else ".024Z")


def sub_element(parent: ET.Element, tag: str, text: object = None, **attrs: object) -> ET.Element:
    """A child ``tag`` of ``parent`` with ``text`` and attributes, each value written as ``str``."""
    element = ET.SubElement(parent, tag, {key: str(value) for key, value in attrs.items()})
    if text is not None:
        element.text = str(text)
    return element


def psd_root(tag: str, schema: str) -> ET.Element:
    """The root element of a document of PSD ``schema``, its namespace prefixed ``n1`` as in ESA's files."""
    ET.register_namespace("n1", _PSD + schema)
    ET.register_namespace("xsi", _XSI)
    return ET.Element(f"{{{_PSD + schema}}}{tag}", {f"{{{_XSI}}}schemaLocation": _PSD + schema})


def psd_child(parent: ET.Element, schema: str, tag: str) -> ET.Element:
    """A child in ``schema``'s namespace: ESA qualifies the top-level sections only, not what they hold."""
    return ET.SubElement(parent, f"{{{_PSD + schema}}}{tag}")


def write_xml(path: Path, root: ET.Element) -> None:
    """``root`` indented two spaces, after the XML declaration ESA's files start with, in UTF-8."""
    ET.indent(root, space="  ")
    declaration = '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    path.write_text(declaration + ET.tostring(root, encoding="unicode") + "\n", encoding="utf-8")
