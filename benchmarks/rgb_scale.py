"""How EuroSAT RGB's 8-bit values relate to reflectance: the scale an RGB model reads products with.

EuroSAT RGB's JPEGs were made from the same L1C patches as EuroSAT MS, but the scaling is not published.
This averages each channel over every image of EuroSAT_RGB.zip and divides EuroSAT MS's published band
means (reflectance x 10,000; B04, B03, B02) by them: the reflectance x 10,000 that maps to 255.

    python benchmarks/rgb_scale.py                          # ../shared/data/EuroSAT_RGB.zip, ~30 s
    python benchmarks/rgb_scale.py --zip path/to/EuroSAT_RGB.zip
"""

import argparse
import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from eurosat_finetune.data.bands import EUROSAT_MS_MEAN, RGB_BANDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "EuroSAT_RGB.zip"
    parser.add_argument("--zip", type=Path, default=default)
    args = parser.parse_args()
    total, pixels = np.zeros(3), 0
    with zipfile.ZipFile(args.zip) as archive:
        names = [name for name in archive.namelist() if name.lower().endswith(".jpg")]
        for name in names:
            image = np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("RGB"), dtype=np.float64)
            total += image.reshape(-1, 3).sum(axis=0)
            pixels += image.shape[0] * image.shape[1]
    means = total / pixels
    scale = {band: round(EUROSAT_MS_MEAN[band] / mean * 255) for band, mean in zip(RGB_BANDS, means, strict=True)}
    print(json.dumps({"images": len(names), "rgb_means": [round(m, 2) for m in means], "reflectance_at_255": scale}))


if __name__ == "__main__":
    main()
