"""A GeoTIFF "scene" made of real EuroSAT RGB test-split tiles, laid out in blocks of one class each,
with the true class of every tile beside it: a scene whose land-cover map can be checked.

    python benchmarks/mosaic.py --out mosaic/          # 12 x 12 tiles (768 x 768 px), UTM 32N, 10 m pixels
    eurosat predict --ckpt_path runs/cpu/version_0/checkpoints/best.ckpt --data.predict_root mosaic/
"""

import argparse
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from eurosat_finetune.data.patches.splits import stratified_split

REAL_ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "EuroSAT_RGB.zip"

# which class fills each 4 x 4 block of tiles: a made-up landscape of nine blocks
LAYOUT = [["Forest", "Pasture", "AnnualCrop"], ["River", "Residential", "PermanentCrop"],
          ["SeaLake", "Industrial", "HerbaceousVegetation"]]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zip", type=Path, default=REAL_ZIP)
    parser.add_argument("--out", type=Path, default=Path("mosaic"))
    parser.add_argument("--block", type=int, default=4, help="tiles per side of each class's block")
    args = parser.parse_args()

    with zipfile.ZipFile(args.zip) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
        classes = sorted({n.split("/")[-2] for n in names})
        labels = [classes.index(n.split("/")[-2]) for n in names]
        test = stratified_split(labels, 0.1, 0.2, 0).test  # the package's default test split
        rng = np.random.default_rng(0)
        pool = {c: list(rng.permutation([i for i in test if labels[i] == classes.index(c)])) for c in classes}
        side = len(LAYOUT) * args.block
        truth = [[LAYOUT[r // args.block][c // args.block] for c in range(side)] for r in range(side)]
        rows = []
        for r in range(side):
            tiles = [archive.read(names[pool[truth[r][c]].pop()]) for c in range(side)]
            rows.append(np.concatenate([np.asarray(Image.open(io.BytesIO(t)).convert("RGB")) for t in tiles], axis=1))
    mosaic = np.concatenate(rows).transpose(2, 0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "height": mosaic.shape[1], "width": mosaic.shape[2], "count": 3, "dtype": "uint8",
               "crs": "EPSG:32632", "transform": from_origin(500_000, 5_000_000, 10, 10)}  # fmt: skip
    with rasterio.open(args.out / "mosaic.tif", "w", **profile) as dst:
        dst.write(mosaic)
    (args.out.parent / f"{args.out.name}-truth.json").write_text(json.dumps(truth))
    print(f"wrote {args.out / 'mosaic.tif'} ({mosaic.shape[2]} x {mosaic.shape[1]} px) and its truth")


if __name__ == "__main__":
    main()
