"""Where a step of the CPU recipe (configs/cpu.yaml) goes beyond the network, on this machine's cores:
`eurosat fit` with the recipe's own settings, for each DataLoader worker count, against the same
run with augmentation off; each a fresh process running --batches training batches of one epoch (no
validation), its images/s the median of the throughput callback's windows after the first.

    python benchmarks/cpu_recipe.py --root /path/to/folder/holding/EuroSAT_RGB --batches 100   # 2.5 minutes on 2 cores

The network alone (batches already on the device, no loader, no augmentation) is what
`python benchmarks/profile_step.py --model cpu-recipe --image-size 96 --batch-size 128 --precision bf16-mixed`
times. The decode cache is built first if the folder has none (once; about a minute for EuroSAT RGB).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]


def images_per_second(log_dir: Path) -> list[float]:
    """Every window's images/s that the throughput callback logged, in order."""
    events = [EventAccumulator(str(p.parent)).Reload() for p in log_dir.rglob("events.out.tfevents.*")]
    scalars = [s for e in events if "train/device/samples_per_sec" in e.Tags()["scalars"] for s in e.Scalars(
        "train/device/samples_per_sec")]  # fmt: skip
    return [s.value for s in sorted(scalars, key=lambda s: s.step)]


def run(root: Path, batches: int, workers: int, augment: bool, workdir: Path, depths: str | None) -> dict:
    """One `eurosat fit` of ``batches`` training batches; its wall time and images/s."""
    command = [
        sys.executable, "-m", "eurosat_finetune", "fit", "--config", "configs/fit.yaml", "--config", "configs/cpu.yaml",
        f"--data.root={root}", f"--data.loader.num_workers={workers}", f"--data.augment={str(augment).lower()}",
        "--trainer.max_epochs=1", f"--trainer.limit_train_batches={batches}", "--trainer.limit_val_batches=0",
        "--throughput.window_size=10", "--export.after_fit=false", "--trainer.enable_progress_bar=false",
        f"--trainer.logger.init_args.save_dir={workdir}", f"--trainer.default_root_dir={workdir}",
        *([f"--model.network.architecture.depths={depths}"] if depths else []),
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    windows = images_per_second(workdir)
    return {"workers": workers, "augment": augment, "wall_s": round(wall, 1), "windows": [round(w) for w in windows],
            "img_s": round(statistics.median(windows[1:] or windows))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="data.root: a folder holding EuroSAT_RGB/")
    parser.add_argument("--batches", type=int, default=60, help="training batches of 128 per run")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--depths", help="model.network.architecture.depths, e.g. [2,2,2,2] (the recipe's until 2026-12-01)"
    )
    args = parser.parse_args()
    results = []
    variants = [(workers, True) for workers in args.workers] + [(min(args.workers), False)]
    for workers, augment in variants:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(run(args.root.resolve(), args.batches, workers, augment, Path(tmp), args.depths))
        print(json.dumps(results[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
