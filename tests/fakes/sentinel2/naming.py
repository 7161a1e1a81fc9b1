"""Every identifier of a product (product, granule, datastrip and datatake names, the band files' prefix), derived
as ESA derives them from its level, processing baseline, MGRS tile and sensing time."""

import datetime as dt
import re
from typing import Literal

SPACECRAFT = "S2A"
PROCESSING_CENTRE = "2APS"  # the processing centre in S2A identifiers since 2022
_REFERENCE_ORBIT = (dt.datetime(2023, 6, 15, 10, 30, 31), 41680, 108)  # absolute and relative orbit then
_ORBIT_SECONDS = 10 * 86400 / 143  # 143 orbits in the 10-day repeat cycle


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


class ProductNames:
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
        self.granule_id = (
            f"{SPACECRAFT}_OPER_MSI_{level}_TL_{PROCESSING_CENTRE}_{gen}_A{self.absolute_orbit:06d}_{tile}_{suffix}"
        )
        self.l1c_granule_id = self.granule_id.replace("_L2A_", "_L1C_")
        self.datastrip_id = f"{SPACECRAFT}_OPER_MSI_{level}_DS_{PROCESSING_CENTRE}_{gen}_S{start}_{suffix}"
        self.datastrip_dir = f"DS_{PROCESSING_CENTRE}_{gen}_S{start}"
        self.datatake_id = f"G{SPACECRAFT}_{stamp}_{self.absolute_orbit:06d}_{suffix}"


def product_name(
    level: Literal["L1C", "L2A"] = "L2A",
    baseline: str = "05.09",
    tile: str = "T32UMU",
    sensing: str = "20230615T103031",
) -> str:
    """The product name ``write_product`` gives, without ``.SAFE`` or ``.zip``, e.g.
    ``S2A_MSIL2A_20230615T103031_N0509_R108_T32UMU_20230615T170036``."""
    return ProductNames(level, baseline, tile, sensing).product
