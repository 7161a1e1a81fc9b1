"""The cost of 13 bands against 3 on this machine: the decode cache (build time, size) and `eurosat fit`'s
training images/s on synthetic EuroSAT MS (13-band uint16 GeoTIFFs in the published band order).

Training runs the CPU recipe (configs/fit.yaml + cpu.yaml + ms.yaml: a small ResNet from scratch)
through the CLI, once on B04, B03, B02 and once on all 13 bands, and reads the images/s its
throughput callback logged over the last --window batches.

    python benchmarks/bands.py --images-per-class 270 --steps 30 --workers 1   # 2,700 images, ~2 minutes on 2 cores
"""

import argparse
import csv
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from eurosat_finetune.cli import build_cli
from eurosat_finetune.data.patches.datasets import list_images, readable_images
from eurosat_finetune.data.patches.decode_cache import DecodeCacheOptions
from eurosat_finetune.data.patches.published import EUROSAT_CLASSES

# the fake data the tests write, from tests/fakes (it is not part of the package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes.multispectral import write_multispectral_sample

REPO = Path(__file__).resolve().parents[1]
BANDS = {"rgb_3_bands": "[B04,B03,B02]", "all_13_bands": "all"}
CONFIGS = [arg for name in ("fit", "cpu", "ms") for arg in ("--config", str(REPO / "configs" / f"{name}.yaml"))]


def train_images_per_s(root: Path, bands: str, args: argparse.Namespace, logs: Path) -> float:
    """`eurosat fit` for --steps batches on ``bands``: the images/s its throughput callback logged last."""
    build_cli(
        [
            "fit",
            *CONFIGS,
            f"--data.root={root}",
            "--data.download.enabled=false",
            f"--data.bands={bands}",
            f"--data.loader.batch_size={args.batch_size}",
            f"--data.loader.num_workers={args.workers}",
            "--trainer.max_epochs=1",
            f"--trainer.limit_train_batches={args.steps}",
            "--trainer.limit_val_batches=0",
            "--trainer.enable_progress_bar=false",
            "--trainer.log_every_n_steps=1",
            "--trainer.callbacks=[]",
            f"--throughput.window_size={args.window}",
            "--trainer.logger=CSVLogger",
            f"--trainer.logger.save_dir={logs}",
            "--export.after_fit=false",
        ]
    )
    with open(next(logs.rglob("metrics.csv"))) as f:
        rates = [float(row["train/device/samples_per_sec"]) for row in csv.DictReader(f)
                 if row.get("train/device/samples_per_sec")]  # fmt: skip
    return rates[-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images-per-class", type=int, default=100)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        folder = write_multispectral_sample(work / "data", classes=EUROSAT_CLASSES, per_class=args.images_per_class,
                                            size=args.size)  # fmt: skip
        written = time.perf_counter() - start
        listing = list_images(folder)
        start = time.perf_counter()
        readable_images(listing, DecodeCacheOptions(enabled=True), skip_unreadable=False, num_workers=args.workers)
        cache_s = time.perf_counter() - start
        cache = next(folder.glob(".decoded-uint16-*[0-9a-f].npy"))
        measured = {
            "images": len(listing.files),
            "write_s": round(written, 1),
            "cache_build_s": round(cache_s, 2),
            "cache_ms_per_image": round(1000 * cache_s / len(listing.files), 3),
            "cache_kb_per_image": round(cache.stat().st_size / len(listing.files) / 1000, 1),
            "cache_gb_for_27000": round(cache.stat().st_size / len(listing.files) * 27000 / 1e9, 2),
        }
        for name, bands in BANDS.items():
            measured[f"train_img_s_{name}"] = round(train_images_per_s(work / "data", bands, args, work / name), 1)
        measured["train_ratio_13_over_3"] = round(
            measured["train_img_s_all_13_bands"] / measured["train_img_s_rgb_3_bands"], 3
        )
        measured["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps(measured, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(measured, indent=2))


if __name__ == "__main__":
    main()
