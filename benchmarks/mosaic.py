"""A GeoTIFF "scene" made of real EuroSAT RGB test-split tiles, laid out in blocks of one class each,
with the true class of every tile beside it: a scene whose land-cover map can be checked.

    python benchmarks/mosaic.py --out mosaic/          # 12 x 12 tiles (768 x 768 px), UTM 32N, 10 m pixels
    eurosat predict --ckpt_path "$run/checkpoints/best.ckpt" --data.predict_root mosaic/ \\
        --maps.reference_points mosaic-points.csv      # the map's accuracy at the 144 tiles' centres

It writes <out>/mosaic.tif, and beside the folder (not in it, where predict would read them)
<out>-truth.json (the class of each tile, row by row) and <out>-points.csv (each tile's centre and class,
in the scene's CRS: the reference points of ``--maps.reference_points``).
"""

import argparse
import csv
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from eurosat_finetune.data.patches.splits import stratified_split

REPO = Path(__file__).resolve().parents[1]
# where `eurosat fit --config configs/fit.yaml` downloads it (data/ in the repository), else ../shared/data/ beside
# the repository, as this project's machines have it; wherever the command is run from
ARCHIVES = (REPO / "data" / "EuroSAT_RGB.zip", REPO.parent / "shared" / "data" / "EuroSAT_RGB.zip")
REAL_ZIP = next((path for path in ARCHIVES if path.is_file()), ARCHIVES[0])

# which class fills each 4 x 4 block of tiles: a made-up landscape of nine blocks
LAYOUT = [
    ["Forest", "Pasture", "AnnualCrop"],
    ["River", "Residential", "PermanentCrop"],
    ["SeaLake", "Industrial", "HerbaceousVegetation"],
]
CRS = "EPSG:32632"
ORIGIN = (500_000, 5_000_000)  # west, north, in metres
PIXEL = 10  # metres, as Sentinel-2's 10 m bands
TILE = 64  # px, EuroSAT's tiles


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--zip", type=Path, default=REAL_ZIP, help="EuroSAT RGB's zip as Zenodo ships it (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=Path("mosaic"), help="folder for mosaic.tif (default: %(default)s)")
    parser.add_argument("--block", type=int, default=4, help="tiles per side of a class's block (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.zip.is_file():  # one line, not zipfile's traceback
        parser.error(
            f"no EuroSAT RGB archive at {args.zip}; give its path with --zip (`eurosat fit --config configs/fit.yaml` "
            "downloads EuroSAT_RGB.zip from Zenodo into data/)"
        )

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
    profile = {
        "driver": "GTiff",
        "height": mosaic.shape[1],
        "width": mosaic.shape[2],
        "count": 3,
        "dtype": "uint8",
        "crs": CRS,
        "transform": from_origin(*ORIGIN, PIXEL, PIXEL),
    }
    scene = args.out / "mosaic.tif"
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(mosaic)
    truth_path = args.out.parent / f"{args.out.name}-truth.json"
    truth_path.write_text(json.dumps(truth))
    points_path = args.out.parent / f"{args.out.name}-points.csv"
    with open(points_path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["x", "y", "class", "crs"])
        half = TILE * PIXEL / 2  # a tile's centre, well inside the map cell of a 64 px window
        for r, row in enumerate(truth):
            for c, name in enumerate(row):
                writer.writerow([ORIGIN[0] + c * TILE * PIXEL + half, ORIGIN[1] - r * TILE * PIXEL - half, name, CRS])
    print(f"wrote {scene} ({mosaic.shape[2]} x {mosaic.shape[1]} px, {side * side} tiles)")
    print(f"its truth: {truth_path} (class of each tile, row by row) and {points_path} (reference points)")


if __name__ == "__main__":
    main(sys.argv[1:])
