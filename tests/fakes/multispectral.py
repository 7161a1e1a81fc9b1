"""Synthetic EuroSAT MS in either published layout, for tests and benchmarks: not real data."""

import math
import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from eurosat_finetune.data.bands import EUROSAT_MS_MEAN, EUROSAT_MS_STD
from eurosat_finetune.data.patches.published import EUROSAT_CLASS_SIZES

PUBLISHED_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
"""The bands of a EuroSAT MS GeoTIFF as published (B8A last), written out here rather than taken from the
package, so that the sample is laid out as the real files are whatever order the package reads them in."""

MS_LAYOUTS = {
    "zenodo": "EuroSAT_MS",  # EuroSAT_MS.zip on Zenodo
    "torchgeo": "ds/images/remote_sensing/otherDatasets/sentinel_2/tif",  # TorchGeo's EuroSATallBands.zip
}


def write_multispectral_sample(
    root: Path,
    layout: str = "zenodo",
    classes: tuple[str, ...] = ("Forest", "River", "SeaLake"),
    per_class: int = 20,
    size: int = 16,
    signal_band: str = "B08",
    seed: int = 0,
) -> Path:
    """A synthetic stand-in for EuroSAT MS in one of its published layouts: 13-band uint16 GeoTIFFs in the
    published band order (B01 ... B12, B8A), each band drawn around EuroSAT MS's published mean and std;
    only ``signal_band`` tells the classes apart (stripes of one std, at 60 k degrees for class k).
    Returns the folder of class folders. Not real data."""
    rng = np.random.default_rng(seed)
    mean = np.array([EUROSAT_MS_MEAN[b] for b in PUBLISHED_ORDER])[:, None, None]
    std = np.array([EUROSAT_MS_STD[b] for b in PUBLISHED_ORDER])[:, None, None]
    signal = PUBLISHED_ORDER.index(signal_band)
    yy, xx = np.mgrid[0:size, 0:size]
    folder = Path(root) / MS_LAYOUTS[layout]
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 13, "dtype": "uint16", "crs": "EPSG:32631"}
    for k, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        for n in range(1, per_class + 1):
            pixels = mean + std * rng.normal(0, 0.5, (13, size, size))
            angle = math.pi * k / 3
            stripes = np.sign(
                np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / 6 + rng.uniform(0, 6))
            )
            pixels[signal] += stripes * std[signal]
            transform = from_origin(500000 + 10 * size * n, 5000000, 10, 10)  # each patch somewhere of its own
            with rasterio.open(folder / name / f"{name}_{n}.tif", "w", transform=transform, **profile) as dst:
                dst.write(np.clip(pixels, 0, 65535).round().astype(np.uint16))
    return folder


def link_published_layout(root: Path, image: Path) -> Path:
    """EuroSAT's 27,000 files as published (its ten classes, ``<Class>/<Class>_<n><suffix>`` numbered from 1),
    each a hard link to ``image`` (a 64 x 64 JPEG for EuroSAT RGB, a 13-band GeoTIFF for EuroSAT MS): what the
    data layer recognises as the published dataset, in a second and without 3 GB. Returns ``root``."""
    for name, size in EUROSAT_CLASS_SIZES.items():
        (root / name).mkdir(parents=True)
        for n in range(1, size + 1):
            os.link(image, root / name / f"{name}_{n}{image.suffix}")
    return root
