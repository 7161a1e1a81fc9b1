"""A class map's legend read back: its GDAL PAM sidecar and QGIS style parsed, and what GDAL itself reads of
it (the band's category names and default raster attribute table) through GDAL's C API (ctypes) in the very
libgdal rasterio runs on. There are no GDAL Python bindings here, and rasterio reads neither."""

import ctypes
import ctypes.util
import json
import os
from pathlib import Path
from xml.etree import ElementTree as ET

import rasterio

# the raster attribute table's columns: (name, GDALRATFieldType, GDALRATFieldUsage), as gdal.h numbers them:
# integers (0) of usage MinMax (5), Red (6), Green (7), Blue (8), Alpha (9); a string (2) of usage Name (2)
COLUMNS = [("Value", 0, 5), ("Red", 0, 6), ("Green", 0, 7), ("Blue", 0, 8), ("Alpha", 0, 9), ("Class_Name", 2, 2)]


def libgdal() -> ctypes.CDLL | None:
    """The GDAL rasterio loaded: a wheel's own copy (``rasterio.libs/libgdal-*.so*``), else the system's."""
    bundled = sorted((Path(rasterio.__file__).parent.parent / "rasterio.libs").glob("libgdal-*.so*"))
    found = str(bundled[0]) if bundled else ctypes.util.find_library("gdal")
    if found is None:
        return None
    lib = ctypes.CDLL(found)
    lib.GDALOpen.restype, lib.GDALOpen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]
    lib.GDALClose.argtypes = [ctypes.c_void_p]
    lib.GDALGetRasterBand.restype, lib.GDALGetRasterBand.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int]
    lib.GDALGetMetadata.restype = ctypes.POINTER(ctypes.c_char_p)
    lib.GDALGetMetadata.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.GDALGetRasterCategoryNames.restype = ctypes.POINTER(ctypes.c_char_p)
    lib.GDALGetRasterCategoryNames.argtypes = [ctypes.c_void_p]
    lib.GDALGetDefaultRAT.restype, lib.GDALGetDefaultRAT.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    for name in ("GDALRATGetRowCount", "GDALRATGetColumnCount"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    for name in ("GDALRATGetUsageOfCol", "GDALRATGetTypeOfCol"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.GDALRATGetNameOfCol.restype = ctypes.c_char_p
    lib.GDALRATGetNameOfCol.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.GDALRATGetValueAsString.restype = ctypes.c_char_p
    lib.GDALRATGetValueAsString.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.GDALAllRegister()
    return lib


def strings(array: "ctypes._Pointer[ctypes.c_char_p]") -> list[str]:
    """A GDAL string list (NULL-terminated ``char **``; NULL itself an empty list)."""
    items: list[str] = []
    while array and array[len(items)] is not None:
        items.append(array[len(items)].decode())
    return items


def read_legend(lib: ctypes.CDLL, path: Path) -> tuple[list[str], list[tuple[str, int, int]], list[list[str]]]:
    """Band 1's category names, and its raster attribute table's columns (name, type, usage) and rows, as GDAL
    opens ``path`` (read only)."""
    dataset = lib.GDALOpen(str(path).encode(), 0)
    assert dataset, f"GDAL cannot open {path}"
    try:
        band = lib.GDALGetRasterBand(dataset, 1)
        # GDAL 3.10's GeoTIFF band loads its PAM sidecar on a first query of its metadata or RAT, not of its
        # category names (read first, they are empty, even for a sidecar GDAL wrote): the metadata first
        lib.GDALGetMetadata(band, None)
        categories = strings(lib.GDALGetRasterCategoryNames(band))
        table = lib.GDALGetDefaultRAT(band)
        if not table:
            return categories, [], []
        columns = [
            (
                lib.GDALRATGetNameOfCol(table, c).decode(),
                lib.GDALRATGetTypeOfCol(table, c),
                lib.GDALRATGetUsageOfCol(table, c),
            )
            for c in range(lib.GDALRATGetColumnCount(table))
        ]
        rows = [
            [lib.GDALRATGetValueAsString(table, r, c).decode() for c in range(len(columns))]
            for r in range(lib.GDALRATGetRowCount(table))
        ]
        return categories, columns, rows
    finally:
        lib.GDALClose(dataset)


def check_legend(class_map: Path) -> list[str]:
    """Check the legend beside ``class_map`` against the map itself: the class names of its tags, the colours of
    its colour table (rasterio's ``colormap``), each value's name and colour in GDAL's PAM sidecar (the XML parsed,
    and as GDAL reads it where it can be loaded) and in the QGIS style. The class names, checked."""
    with rasterio.open(class_map) as source:
        names = json.loads(source.tags()["class_names"])
        table = source.colormap(1)
        nodata = source.nodata
    colours = {value: table[value] for value in range(len(names))}
    assert nodata == 255 and len(names) < nodata  # no-data is past the last class: no category name

    pam = ET.parse(class_map.with_name(f"{class_map.name}.aux.xml")).getroot()
    assert pam.tag == "PAMDataset"
    (band,) = pam.findall("PAMRasterBand")
    assert band.get("band") == "1"
    assert [c.text or "" for c in band.findall("CategoryNames/Category")] == names  # value N's name is the N-th
    rat = band.find("GDALRasterAttributeTable")
    assert rat is not None and rat.get("tableType") == "thematic"
    fields = [
        (f.findtext("Name"), int(f.findtext("Type", "")), int(f.findtext("Usage", ""))) for f in rat.iter("FieldDefn")
    ]
    assert fields == COLUMNS
    rows = [[f.text or "" for f in row.findall("F")] for row in rat.findall("Row")]
    assert rows == [[str(v), *map(str, colours[v]), names[v]] for v in range(len(names))]

    style = class_map.with_suffix(".qml")  # <name>.classes.qml: the style QGIS loads for <name>.classes.tif
    text = style.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE qgis")
    qgis = ET.fromstring(text)
    (renderer,) = qgis.findall("pipe/rasterrenderer")
    assert (renderer.get("type"), renderer.get("band")) == ("paletted", "1")
    entries = [
        (int(e.get("value", "")), e.get("color"), int(e.get("alpha", "")), e.get("label"))
        for e in renderer.iter("paletteEntry")
    ]
    assert entries == [
        (v, "#{:02x}{:02x}{:02x}".format(*colours[v][:3]), colours[v][3], names[v]) for v in range(len(names))
    ]

    lib = libgdal()
    if lib is not None:  # GDAL itself finds the sidecar beside the map and reads what the XML says
        # as a GIS tool opens it: listing the map's folder, which reading STAC items over HTTP turns off for the
        # rest of the process (stac_items.HTTP_DEFAULTS), and which a STAC test earlier in this one may have done
        readdir = os.environ.pop("GDAL_DISABLE_READDIR_ON_OPEN", None)
        try:
            categories, columns, gdal_rows = read_legend(lib, class_map)
        finally:
            if readdir is not None:
                os.environ["GDAL_DISABLE_READDIR_ON_OPEN"] = readdir
        assert categories == names and columns == COLUMNS and gdal_rows == rows
    return names
