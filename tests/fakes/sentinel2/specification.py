"""What the product specification fixes for every synthetic product: the L2A folder layout, the scene classes,
the quantification and radiometric offset, and the constant atmosphere an L2A product records."""

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
"""Reflectance = (DN + offset) / QUANTIFICATION: the quantification of every product so far, and the default."""

BASELINE_OFFSET = -1000
"""The radiometric offset of every band since processing baseline 04.00 (none before)."""

AOT_DN, WVP_DN = 110, 1500
"""The constant aerosol optical thickness (0.11 at quantification 1000) and water vapour (1.5 cm) written."""
