"""Land-cover mapping of a full Sentinel-2 tile: windows/s and peak memory of `eurosat predict`.

Writes a synthetic 10980 x 10980 px RGB GeoTIFF (uint8, tiled, in blocks: never whole in memory),
trains a tiny ViT for a few steps on the offline sample (any weights map at the same speed), then maps
the scene with `eurosat predict` in a child process and reports its wall time, windows/s (also net of
the fixed cost of starting, timed on one window-sized image) and peak RSS, beside the windows/s of reading
the windows alone (no model), which shows whether reading limits it.

    python benchmarks/maps.py                      # CPU, tiny model, ~3 minutes on 2 cores
    python benchmarks/maps.py --size 2048          # a smaller scene, for a quick look
    python benchmarks/maps.py --product            # a full-size synthetic L2A product (JPEG 2000 bands)
    python benchmarks/maps.py --stac               # a composite of STAC items over a bbox, from a local API
    python benchmarks/maps.py --stac --size 1536 --block 256 --bbox-km 7   # the test's small case, ~30 s

With ``--product`` it writes a synthetic L2A product in ESA's layout (10 m bands 10980 px, tiled 1,024 as
GDAL writes JPEG 2000), trains a tiny ViT on the 12 bands of the multispectral sample, and reports the
whole `eurosat predict` command time beside the time rasterio takes to decode the band files it reads
once (one process), their ratio, windows/s and the peak memory of predict and its DataLoader workers
together (proportional set sizes sampled from /proc: shared pages count once). ``--products DIR`` keeps
the product there and reuses it in later runs (writing it takes minutes).

With ``--stac`` it writes three dates of one full-size Earth Search item (COGs tiled 1,024 px as Earth Search's,
``--block``; one set of pixels, bright and classed cloud, SCL 9, over part of the bbox on the first two dates),
serves them from a local STAC API (tests/fakes/stac, on 127.0.0.1, counting every byte sent) and maps a bbox of
about 20 x 20 km in the middle of the tile (``--bbox-km``) found by a search URL, with `eurosat predict
--data.maps.composite=median`. It reports the bytes fetched beside the bytes of the COG tiles that intersect the
bbox (of every file fetched: 12 bands and SCL of each date; goal: 1.3 times or less), and the whole command's
time beside the time rasterio takes to read the same windows over the bbox once from the served files, in one
process (goal: 1.5 times or less); also the command's fixed cost (start-up, the search, the items' metadata and
offsets checked: the same command over one window's bbox) and the ratio net of it. The map is read by one
process (``--data.loader.num_workers=0``): each boundary between readers' shares of the rows costs one more
tile row of the 20 m and 60 m files, since the resampling kernel crosses it. ``--stac-files DIR`` keeps the
COGs there for later runs (writing them takes minutes).

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
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from torch.utils.data import DataLoader

from eurosat_finetune.cli import main as eurosat_main
from eurosat_finetune.data.bands import EUROSAT_MS_BANDS
from eurosat_finetune.data.scenes.catalog import SceneOptions, TrainedOn
from eurosat_finetune.data.scenes.raster_rows import grid_of
from eurosat_finetune.data.scenes.stac_items import HTTP_DEFAULTS
from eurosat_finetune.data.scenes.windows import SceneWindows

# the fake data the tests write, from tests/fakes (it is not part of the package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes.multispectral import write_multispectral_sample
from fakes.sentinel2 import native_bands, sample_product_bands, write_product
from fakes.stac import EPSG, ORIGIN, StacServer, earth_search_item, scene_pixels, tile_bytes

L2A_BANDS = [band for band in EUROSAT_MS_BANDS if band != "B10"]
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


def fitted_on_l2a_bands(work: Path) -> Path:
    """A tiny ViT trained for two steps on the 12 L2A bands (all but B10) of the multispectral sample, written
    under ``work``; its best checkpoint."""
    write_multispectral_sample(work / "ms")
    fit = ["fit", "--model.network.pretrained=null", f"--model.network.architecture={TINY}"]
    fit += [f"--data.root={work / 'ms'}", "--trainer.enable_progress_bar=false"]
    fit += [f"--data.bands=[{','.join(L2A_BANDS)}]", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]
    fit += ["--trainer.accelerator=cpu", "--data.loader.num_workers=0"]
    return fitted(fit, work)


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
    # stderr to a file, not a pipe read at the end: a pipe holds 64 KB, and a child that writes more waits forever
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr)
        while process.poll() is None:
            together, alone = tree_memory(process.pid)
            peak, largest = max(peak, together), max(largest, alone)
            time.sleep(0.2)
        if process.returncode != 0:
            stderr.seek(0)
            raise SystemExit(stderr.read()[-3000:])
    return time.perf_counter() - start, peak, largest


def product_benchmark(args: argparse.Namespace) -> dict:
    """Map a full-size synthetic L2A product; time rasterio decoding the band files read once."""
    eurosat = [sys.executable, "-m", "eurosat_finetune"]
    bands = L2A_BANDS
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start, products = time.perf_counter(), args.products or work / "products"
        product = next(products.glob("*.SAFE"), None) if products.is_dir() else None
        if product is None:
            product = write_product(products, native_bands(sample_product_bands(args.size, args.size)), "L2A")
        written = time.perf_counter() - start
        checkpoint = fitted_on_l2a_bands(work)
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


STAC_DATES = ("20230615", "20230620", "20230710")
PLACEHOLDER = "http://stac.invalid/files"  # the items' hrefs as written: the server's URL (a new port) replaces it
CLOUD = 9000  # DN of every band under a cloud
MARGIN = 16  # 10 m px of SCL cloud beyond the bright pixels, past what resampling the 60 m bands spreads


def six(value: int) -> int:
    """``value`` down to whole 60 m pixels (10 m px)."""
    return value // 6 * 6


def stac_area(size: int, bbox_km: float) -> tuple[int, int]:
    """The bbox's first row (and column) and its side, in 10 m px of the tile: a square in the middle."""
    side = round(bbox_km * 100)
    if not 0 < side < size:
        raise SystemExit(f"--bbox-km {bbox_km}: the bbox must lie inside the {size * 10 / 1000:g} km tile")
    return (size - side) // 2, side


def stac_clouds(size: int, bbox_km: float) -> list[list[tuple[slice, slice]]]:
    """Each date's clouds (10 m rows and columns, whole 60 m pixels), over a quarter of the bbox's side each: the
    first date cloudy over its upper left, the second there and over its lower right, the third clear."""
    first, side = stac_area(size, bbox_km)
    quarter = side // 4
    upper_left = slice(six(first + quarter // 2), six(first + quarter // 2 + quarter))
    lower_right = slice(six(first + 2 * quarter + quarter // 2), six(first + 3 * quarter + quarter // 2))
    return [[(upper_left, upper_left)], [(upper_left, upper_left), (lower_right, lower_right)], []]


def write_stac_items(files: Path, size: int, block: int, bbox_km: float) -> list[dict]:
    """Three dates of one Earth Search item of ``size`` px at 10 m, its COGs tiled ``block`` px under ``files``:
    one set of pixels (building it is most of the cost: 13 bands of 10,980 px are 3 GB), bright and classed cloud
    (SCL 9) where each date is cloudy. Its items are kept in ``files``/items.json for later runs."""
    _, stored = scene_pixels(1, 0, size)
    items = []
    for date, clouds in zip(STAC_DATES, stac_clouds(size, bbox_km), strict=True):
        classes = np.full((size // 2, size // 2), 4, np.uint8)  # vegetation
        clear: list[tuple[np.ndarray, tuple[slice, slice], np.ndarray]] = []  # to put back for the next date
        for rows, cols in clouds:
            for pixels in stored.values():
                f = size // pixels.shape[0]
                cloud = (slice(rows.start // f, rows.stop // f), slice(cols.start // f, cols.stop // f))
                clear.append((pixels, cloud, pixels[cloud].copy()))
                pixels[cloud] = CLOUD
            top, left = max(0, rows.start - MARGIN) // 2, max(0, cols.start - MARGIN) // 2
            classes[top : (rows.stop + MARGIN) // 2, left : (cols.stop + MARGIN) // 2] = 9
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):  # deflate on every core
            items.append(earth_search_item(files, PLACEHOLDER, stored, True, date=date, scl=classes, block=block))
        for pixels, cloud, original in reversed(clear):
            pixels[cloud] = original
    kept = {"size": size, "block": block, "bbox_km": bbox_km, "items": items}
    (files / "items.json").write_text(json.dumps(kept))
    return items


def stac_items(files: Path, size: int, block: int, bbox_km: float) -> list[dict] | None:
    """The items kept in ``files`` by an earlier run of the same size, tiles and bbox; None if there are none."""
    try:
        kept = json.loads((files / "items.json").read_text())
    except (OSError, ValueError):
        return None
    return kept["items"] if (kept["size"], kept["block"], kept["bbox_km"]) == (size, block, bbox_km) else None


def square_bbox(first: int, side: int) -> list[float]:
    """West, south, east, north (degrees) of the square of ``side`` 10 m px from row and column ``first`` of the
    tile: the lon/lat box that holds it (a little larger, as the UTM grid is turned)."""
    x0, y0 = ORIGIN[0] + 10 * first, ORIGIN[1] - 10 * first
    return list(transform_bounds(f"EPSG:{EPSG}", "EPSG:4326", x0, y0 - 10 * side, x0 + 10 * side, y0))


def stac_benchmark(args: argparse.Namespace) -> dict:
    """Map a median composite of three dates of a full-size tile, searched by bbox on a local STAC API; the
    bytes fetched beside those of the COG tiles under the bbox, and the time beside rasterio reading the same
    windows once."""
    eurosat = [sys.executable, "-m", "eurosat_finetune"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start, files = time.perf_counter(), args.stac_files or work / "stac"
        items = stac_items(files, args.size, args.block, args.bbox_km)
        if items is None:
            items = write_stac_items(files, args.size, args.block, args.bbox_km)
        written = time.perf_counter() - start
        checkpoint = fitted_on_l2a_bands(work)
        first, side = stac_area(args.size, args.bbox_km)
        bbox, one = (square_bbox(first, px) for px in (side, args.tile_size))
        server = StacServer(files, whole_file_reads=False)
        try:
            served = json.dumps(items).replace(PLACEHOLDER, server.file_url("").rstrip("/"))
            for item in json.loads(served):
                server.add_item(item)
            search = f"{server.url}/search?collections=sentinel-2-l2a&bbox="
            # one reading process (num_workers=0): each boundary between readers' shares of the rows costs one
            # more tile row of the 20 m and 60 m files, since the resampling kernel reaches across it
            predict = [*eurosat, "predict", f"--ckpt_path={checkpoint}", "--data.maps.composite=median"]
            predict += [f"--data.maps.window={args.tile_size}", f"--data.loader.batch_size={args.batch_size}"]
            predict += ["--data.loader.num_workers=0", "--trainer.enable_progress_bar=false"]
            # the fixed cost (start-up, the search, the items' metadata, their offsets checked): one window's bbox
            fixed_root = f"--trainer.default_root_dir={work / 'fixed'}"  # its map not among the maps reported
            fixed = run([*predict, f"--data.predict_root={search}{','.join(map(str, one))}", fixed_root], work)
            server.bytes_sent.clear()
            server.ranges.clear()
            seconds, peak, _ = run_sampled([*predict, f"--data.predict_root={search}{','.join(map(str, bbox))}"], work)
            fetched, requests, read = sum(server.bytes_sent.values()), len(server.ranges), sorted(server.bytes_sent)
            tiles = sum(tile_bytes(files / path, bbox) for path in read)
            server.bytes_sent.clear()
            start = time.perf_counter()
            with rasterio.Env(**HTTP_DEFAULTS):  # the reference: each file's window over the bbox, read once
                for path in read:
                    with rasterio.open(server.file_url(path)) as source:
                        source.read(1, window=grid_of(source).window_over(tuple(bbox), "EPSG:4326"))
            reference = time.perf_counter() - start
            reference_fetched = sum(server.bytes_sent.values())
        finally:
            server.close()
        maps = sorted(path.name for path in work.glob("lightning_logs/**/maps/*.classes.tif"))
    return {
        "tile_px": args.size,
        "cog_block_px": args.block,
        "bbox_km": args.bbox_km,
        "dates": len(items),
        "stac_files_written_s": round(written, 1),  # 0 when reused
        "files_fetched": len(read),
        "requests": requests,
        "bytes_fetched": fetched,
        "bbox_tile_bytes": tiles,  # of every file fetched
        "bytes_ratio": round(fetched / tiles, 3),
        "predict_s": round(seconds, 1),
        "rasterio_read_windows_once_s": round(reference, 1),
        "rasterio_bytes_fetched": reference_fetched,
        "time_ratio": round(seconds / reference, 2),
        "fixed_s": round(fixed, 1),
        "time_ratio_after_start": round((seconds - fixed) / reference, 2),
        "peak_memory_gib_predict": round(peak / 2**30, 2),
        "maps": maps,
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
    parser.add_argument("--stac", action="store_true", help="map a median composite of STAC items, by bbox")
    parser.add_argument("--stac-files", type=Path, default=None, help="with --stac: keep (or reuse) its COGs here")
    parser.add_argument("--block", type=int, default=1024, help="with --stac: the COGs' tiles, px (Earth Search's)")
    parser.add_argument("--bbox-km", type=float, default=20.0, help="with --stac: the side of the mapped bbox")
    args = parser.parse_args(argv)
    if args.product or args.stac:
        result = stac_benchmark(args) if args.stac else product_benchmark(args)
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
