"""Bands between resolutions: block means and modes going coarser, repetition going finer, and ``native_bands``,
which takes every band from the 10 m grid to the resolution ESA stores it at."""

import numpy as np

from eurosat_finetune.data.bands import ESA_BANDS, NATIVE_RESOLUTION


def block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """``factor`` x ``factor`` block means, rounded half up; 0 (no data) wherever a block holds a 0."""
    h, w = array.shape
    total = np.zeros((h // factor, w // factor), np.uint32)
    low = array[::factor, ::factor].copy()
    for i in range(factor):  # one strided pass per block position: ~7x faster than reducing a 4-D view
        for j in range(factor):
            pixels = array[i::factor, j::factor]
            total += pixels
            np.minimum(low, pixels, out=low)
    total += factor * factor // 2
    total //= factor * factor
    total[low == 0] = 0
    return total.astype(np.uint16)


def block_mode(classes: np.ndarray, factor: int) -> np.ndarray:
    """The most frequent class of each ``factor`` x ``factor`` block (ties: the lower class)."""
    h, w = classes.shape
    best = np.zeros((h // factor, w // factor), np.uint8)
    best_count = np.full(best.shape, -1, np.int16)
    for value in np.flatnonzero(np.bincount(classes.ravel())):
        count = np.zeros(best.shape, np.int16)
        for i in range(factor):
            for j in range(factor):
                count += classes[i::factor, j::factor] == value
        better = count > best_count
        best[better], best_count[better] = value, count[better]
    return best


def nearest_upsample(array: np.ndarray, factor: int) -> np.ndarray:
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
        native[band] = array if factor == 1 else block_mean(array, factor)
    return native
