"""Land-cover mapping of a full Sentinel-2 tile: windows/s and peak memory of `eurosat predict`.

Writes a synthetic 10980 x 10980 px RGB GeoTIFF (uint8, tiled, in blocks: never whole in memory),
trains a tiny ViT for a few steps on the offline sample (any weights map at the same speed), then maps
the scene with `eurosat predict` in a child process and reports its wall time, windows/s (also net of
the fixed cost of starting, timed on one window-sized image) and peak RSS, beside the windows/s of reading
the windows alone (no model), which shows whether reading limits it.

    python benchmarks/maps.py                      # CPU, tiny model, ~3 minutes on 2 cores
    python benchmarks/maps.py --size 2048          # a smaller scene, for a quick look
    python benchmarks/maps.py --product            # a full-size synthetic L2A product (JPEG 2000 bands)

With ``--product`` it writes a synthetic L2A product in ESA's layout (10 m bands 10980 px, tiled 1,024 as
GDAL writes JPEG 2000), trains a tiny ViT on the 12 bands of the multispectral sample, and reports the
whole `eurosat predict` command time beside the time rasterio takes to decode the band files it reads
once (one process), their ratio, windows/s and the peak memory of predict and its DataLoader workers
together (proportional set sizes sampled from /proc: shared pages count once). ``--products DIR`` keeps
the product there and reuses it in later runs (writing it takes minutes).

On a GPU, map with a real model and a bigger batch (the script prints this too), e.g.
    eurosat predict --ckpt_path best.ckpt --data.predict_root scenes/ \
        --data.loader.batch_size 1024 --data.loader.num_workers 8
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window
from torch.utils.data import DataLoader

from eurosat_finetune.cli import main as eurosat_main
from eurosat_finetune.data.bands import EUROSAT_MS_BANDS
from eurosat_finetune.data.scenes.catalog import SceneOptions, TrainedOn
from eurosat_finetune.data.scenes.windows import SceneWindows

# the fake data the tests write, from tests/fakes (it is not part of the package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes.multispectral import write_multispectral_sample
from fakes.sentinel2 import native_bands, sample_product_bands, write_product

TINY = '{"model_type": "vit", "image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2, ' \
    '"num_attention_heads": 2, "intermediate_size": 64}'  # fmt: skip


def write_scene(path: Path, size: int) -> None:
    """A uint8 RGB GeoTIFF of smooth random fields, written 512 rows at a time."""
    rng = np.random.default_rng(0)
    profile = {"driver": "GTiff", "height": size, "width": size, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32632", "transform": from_origin(500_000, 5_000_000, 10, 10), "tiled": True}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, size, 512):
            rows = min(512, size - top)
            block = rng.integers(0, 256, (3, rows, size), dtype=np.uint8)
            dst.write(block, window=Window(0, top, size, rows))


def run(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return time.perf_counter() - start


def fitted(fit: list[str], work: Path) -> Path:
    """``eurosat <fit>`` in this process (it is not timed: any weights map at the same speed), writing its run
    under ``work``; the best checkpoint."""
    eurosat_main([*fit, f"--trainer.default_root_dir={work}"])
    return next(work.glob("lightning_logs/**/best.ckpt"))


def tree_memory(pid: int) -> tuple[int, int]:
    """Bytes of memory process ``pid`` and all its descendants hold together (the sum of their proportional
    set sizes, so pages a DataLoader worker shares with its parent count once), and the resident bytes of
    the largest of them (Linux /proc)."""
    total, largest, pending = 0, 0, [pid]
    while pending:
        current = pending.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text().splitlines()
            total += int(next(line.split()[1] for line in rollup if line.startswith("Pss:"))) * 1024
            largest = max(largest, int(next(line.split()[1] for line in rollup if line.startswith("Rss:"))) * 1024)
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total, largest


def run_sampled(command: list[str], cwd: Path) -> tuple[float, int, int]:
    """Wall seconds of ``command``, the peak memory of it and its children together, and the peak resident
    memory of the largest of them."""
    start, peak, largest = time.perf_counter(), 0, 0
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while process.poll() is None:
        together, alone = tree_memory(process.pid)
        peak, largest = max(peak, together), max(largest, alone)
        time.sleep(0.2)
    if process.returncode != 0:
        raise SystemExit(process.stderr.read()[-3000:])
    return time.perf_counter() - start, peak, largest


def product_benchmark(args: argparse.Namespace) -> dict:
    """Map a full-size synthetic L2A product; time rasterio decoding the band files read once."""
    eurosat = [sys.executable, "-m", "eurosat_finetune"]
    bands = [band for band in EUROSAT_MS_BANDS if band != "B10"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start, products = time.perf_counter(), args.products or work / "products"
        product = next(products.glob("*.SAFE"), None) if products.is_dir() else None
        if product is None:
            product = write_product(products, native_bands(sample_product_bands(args.size, args.size)), "L2A")
        written = time.perf_counter() - start
        write_multispectral_sample(work / "ms")
        fit = [
            "fit",
            "--model.network.pretrained=null",
            f"--model.network.architecture={TINY}",
            f"--data.root={work / 'ms'}",
        ]
        fit += [f"--data.bands=[{','.join(bands)}]", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]
        fit += ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--data.loader.num_workers=0"]
        checkpoint = fitted(fit, work)
        options = SceneOptions("auto", args.tile_size, None, None, 2750.0)
        (scene,), _ = options.scenes_among(products, [product], [], TrainedOn(16, bands, 10.0))
        files = [scene.source.product.band_files[band][0] for band in bands]
        start = time.perf_counter()
        for path in files:
            with rasterio.open(path) as source:
                source.read(1)
        decode = time.perf_counter() - start
        predict = ["predict", f"--ckpt_path={checkpoint}", f"--data.predict_root={product}"]
        predict += [f"--data.maps.window={args.tile_size}", f"--data.loader.batch_size={args.batch_size}"]
        predict += [f"--data.loader.num_workers={args.workers}", "--trainer.enable_progress_bar=false"]
        seconds, peak, largest = run_sampled([*eurosat, *predict], work)
    return {
        "product_px": args.size,
        "product_written_s": round(written, 1),  # 0 when reused
        "windows": scene.window_count,
        "predict_s": round(seconds, 1),
        "rasterio_decode_once_s": round(decode, 1),
        "ratio": round(seconds / decode, 2),
        "windows_per_s": round(scene.window_count / seconds, 1),
        "peak_memory_gib_predict_and_workers": round(peak / 2**30, 2),
        "peak_rss_gib_largest_process": round(largest / 2**30, 2),  # predict or one of its workers
        "workers": args.workers,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10980, help="scene side, px (a Sentinel-2 tile: 10980)")
    parser.add_argument("--tile-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--product", action="store_true", help="map a synthetic L2A product instead of a GeoTIFF")
    parser.add_argument("--products", type=Path, default=None, help="with --product: keep (or reuse) it here")
    args = parser.parse_args(argv)
    if args.product:
        result = product_benchmark(args)
        print(json.dumps(result, indent=2))
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=2))
        return

    eurosat = [sys.executable, "-m", "eurosat_finetune"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "scenes").mkdir()
        write_scene(work / "scenes" / "tile.tif", args.size)
        fit = [
            "fit",
            "--model.network.pretrained=null",
            f"--model.network.architecture={TINY}",
            f"--data.root={work / 'sample'}",
        ]
        fit += ["--data.synthetic_images_per_class=20", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]
        fit += ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--data.loader.num_workers=0"]
        checkpoint = fitted(fit, work)

        options = SceneOptions("auto", args.tile_size, None, None, 2750.0)
        scenes, _ = options.scenes_among(work / "scenes", [], [work / "scenes" / "tile.tif"], TrainedOn())
        start = time.perf_counter()
        for _ in DataLoader(SceneWindows(scenes, args.batch_size), batch_size=None, num_workers=args.workers):
            pass
        count = sum(scene.window_count for scene in scenes)
        reading = count / (time.perf_counter() - start)

        predict = ["predict", f"--ckpt_path={checkpoint}", "--data.predict_root=scenes"]
        predict += [f"--data.maps.window={args.tile_size}", f"--data.loader.batch_size={args.batch_size}"]
        predict += [f"--data.loader.num_workers={args.workers}", "--trainer.enable_progress_bar=false"]
        (work / "one").mkdir()  # the fixed cost (start-up, loading the model), on one image of one window
        write_scene(work / "one" / "one.tif", args.tile_size)
        fixed = run([*eurosat, *predict, "--data.predict_root=one"], work)
        seconds = run([*eurosat, *predict], work)
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # the largest child: predict
        maps = sorted(p.name for p in work.glob("lightning_logs/**/maps/tile.*"))
    result = {
        "scene_px": args.size,
        "windows": count,
        "predict_s": round(seconds, 1),
        "windows_per_s": round(count / seconds, 1),
        "fixed_s": round(fixed, 1),
        "windows_per_s_after_start": round(count / (seconds - fixed), 1),
        "reading_alone_windows_per_s": round(reading, 1),
        "peak_rss_gib": round(peak_gib, 2),
        "maps": maps,
    }
    print(json.dumps(result, indent=2))
    print("On a GPU, with a real model: eurosat predict --ckpt_path best.ckpt --data.predict_root scenes/ "
          "--data.loader.batch_size 1024 --data.loader.num_workers 8")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
