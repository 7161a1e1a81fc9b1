"""A class map's legend: each class's colour and name, where the field's tools read them. The GeoTIFF holds the
colour table and ``class_N`` tags, which no GIS shows as a legend; so beside it go

- ``<map>.aux.xml``, GDAL's PAM sidecar: the band's category names (GDAL's ``GetCategoryNames``) and a thematic
  raster attribute table (Value, Red, Green, Blue, Alpha, Class_Name). GDAL keeps both there for a GeoTIFF (its
  GTiff driver stores neither in the file), and rasterio has no API for either, so they are written in the XML
  GDAL itself writes for them (GDAL 3.10's own ``SetCategoryNames``/``SetDefaultRAT`` output, element for element);
- ``<map stem>.qml``, a QGIS style (a paletted renderer: each value's colour and class name), which QGIS loads
  by itself for the layer of the same base name.

Both are written under a temporary name and renamed when complete, never over an earlier file."""

import os
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
from matplotlib import colormaps

from eurosat_finetune.errors import OutputError

NODATA_CLASS = 255  # a map cell no valid window covered; past the last class, so it has no category name

# GDAL's GDALRATFieldType and GDALRATFieldUsage values (gdal.h), as its PAM XML writes them
GFT_INTEGER, GFT_STRING = 0, 2
GFU_NAME, GFU_MIN_MAX, GFU_RED, GFU_GREEN, GFU_BLUE, GFU_ALPHA = 2, 5, 6, 7, 8, 9
RAT_COLUMNS = (  # (name, type, usage): the columns QGIS and ArcGIS recognise a classification by
    ("Value", GFT_INTEGER, GFU_MIN_MAX),
    ("Red", GFT_INTEGER, GFU_RED),
    ("Green", GFT_INTEGER, GFU_GREEN),
    ("Blue", GFT_INTEGER, GFU_BLUE),
    ("Alpha", GFT_INTEGER, GFU_ALPHA),
    ("Class_Name", GFT_STRING, GFU_NAME),
)
# a QGIS 3 style: QGIS runs its updates for older files on a style whose version is older than its own
# (and takes a missing one for the oldest), so the version a paletted renderer of this form was written by
QGIS_VERSION = "3.28.0-Firenze"


def class_colours(count: int) -> np.ndarray:
    """One RGB uint8 colour per class (matplotlib's tab10/tab20): the map's colour table, its legends, its preview."""
    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return (np.array([palette(i % palette.N)[:3] for i in range(count)]) * 255).round().astype(np.uint8)


def colour_table(class_names: list[str]) -> dict[int, tuple[int, int, int, int]]:
    """The class map's colour table: each class's value, its colour, opaque."""
    return {i: (*map(int, c), 255) for i, c in enumerate(class_colours(len(class_names)))}


def pam_xml(class_names: list[str]) -> str:
    """GDAL's PAM sidecar of a one-band class map: category names indexed by pixel value (value N's name is the
    N-th; the no-data value, past the last class, has none, as GDAL leaves a value without a name), and a
    thematic raster attribute table of one row per class."""
    dataset = ET.Element("PAMDataset")
    band = ET.SubElement(dataset, "PAMRasterBand", band="1")
    categories = ET.SubElement(band, "CategoryNames")
    for name in class_names:
        ET.SubElement(categories, "Category").text = name
    table = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
    for index, (name, kind, usage) in enumerate(RAT_COLUMNS):
        field = ET.SubElement(table, "FieldDefn", index=str(index))
        ET.SubElement(field, "Name").text = name
        ET.SubElement(field, "Type").text = str(kind)
        ET.SubElement(field, "Usage").text = str(usage)
    for value, (red, green, blue, alpha) in colour_table(class_names).items():
        row = ET.SubElement(table, "Row", index=str(value))
        for cell in (value, red, green, blue, alpha, class_names[value]):
            ET.SubElement(row, "F").text = str(cell)
    ET.indent(dataset)
    return ET.tostring(dataset, encoding="unicode") + "\n"


def qgis_style(class_names: list[str]) -> str:
    """A QGIS layer style of the class map: a paletted renderer of band 1, each class's value in the colour
    table's colour, labelled with its name; the no-data value is the layer's own, drawn transparent."""
    qgis = ET.Element("qgis", version=QGIS_VERSION, styleCategories="Symbology")
    pipe = ET.SubElement(qgis, "pipe")
    renderer = ET.SubElement(
        pipe, "rasterrenderer", type="paletted", band="1", opacity="1", alphaBand="-1", nodataColor=""
    )
    ET.SubElement(renderer, "rasterTransparency")
    palette = ET.SubElement(renderer, "colorPalette")
    for value, (red, green, blue, alpha) in colour_table(class_names).items():
        colour = f"#{red:02x}{green:02x}{blue:02x}"
        ET.SubElement(
            palette, "paletteEntry", value=str(value), color=colour, label=class_names[value], alpha=str(alpha)
        )
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(qgis, "blendMode").text = "0"
    ET.indent(qgis)
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(qgis, encoding="unicode") + "\n"


def legend_paths(class_map: Path) -> tuple[Path, Path]:
    """Where GDAL (``<name>.classes.tif.aux.xml``) and QGIS (``<name>.classes.qml``, for the layer
    ``<name>.classes.tif``) look for a class map's legend."""
    return class_map.with_name(f"{class_map.name}.aux.xml"), class_map.with_suffix(".qml")


def write_legend(class_map: Path, class_names: list[str]) -> list[Path]:
    """Write the class map's legend beside it (see the module): the files written."""
    written = []
    for path, text in zip(legend_paths(class_map), (pam_xml(class_names), qgis_style(class_names)), strict=True):
        if path.exists():  # an earlier map's legend, or one a GIS wrote: never replaced
            raise OutputError(f"{path} already exists; choose another --maps.dirpath or move it")
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written
