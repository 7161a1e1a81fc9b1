"""Plausible pixel values for synthetic products: each band is EuroSAT MS's mean and std following two smooth
fields (vegetation, brightness) plus noise, on the 10 m grid. Seeded by (seed, band, strip), so deterministic."""

import math
from collections.abc import Iterator, Sequence

import numpy as np

from eurosat_finetune.data.bands import ESA_BANDS, EUROSAT_MS_MEAN, EUROSAT_MS_STD

_LOADINGS = {
    "B01": (-0.30, 0.80), "B02": (-0.40, 0.80), "B03": (-0.20, 0.85), "B04": (-0.55, 0.75), "B05": (-0.10, 0.85),
    "B06": (0.60, 0.60), "B07": (0.75, 0.50), "B08": (0.75, 0.50), "B8A": (0.75, 0.50), "B09": (0.50, 0.50),
    "B10": (0.00, 0.40), "B11": (-0.35, 0.80), "B12": (-0.50, 0.75),
}  # fmt: skip
_ROWS_PER_CHUNK = 512  # sample_product_bands works in strips of this many rows (fixed: it seeds the noise)


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
    the two fields, kept between bands, 964 MB: peak RSS ~2.2 GB (with torch imported), ~40 s on 2 cores."""
    unknown = [band for band in bands if band not in ESA_BANDS]
    if unknown:
        raise ValueError(f"iter_sample_product_bands: unknown bands {unknown}; bands are {', '.join(ESA_BANDS)}")
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

    Deterministic in (height, width, seed, offset). At 10980 x 10980: the 13 arrays are 3.1 GB, peak RSS 4.0 GB,
    ~40 s on 2 cores; ``iter_sample_product_bands`` gives them one at a time."""
    out = {band: np.empty((height, width), np.uint16) for band in ESA_BANDS}
    fields = _Fields(height, width, seed)
    for chunk, start in enumerate(range(0, height, _ROWS_PER_CHUNK)):
        rows = np.arange(start, min(start + _ROWS_PER_CHUNK, height))
        veg, bright = fields.strip(rows)
        for band in ESA_BANDS:
            out[band][rows] = _band_strip(band, veg, bright, seed, chunk, offset)
    return out
