"""Test accuracy against the number of training images: the seed's few-shot figure.

For each training-set size, one LightningCLI fit (``--data.split.train_size``; one epoch by default, so
every image is seen once) and a test of the final weights on the untouched test split. Writes
``learning_curve.csv`` (each accuracy with its 95% Wilson interval over the test images) and
``learning_curve.png`` (log x-axis, the intervals as error bars), and each run's logs and test report
under ``--out``. Every option after the curve's own goes to the CLI, as for ``eurosat fit``::

    python -m eurosat_finetune.learning_curve --out runs/learning_curve --config configs/fit.yaml
"""

import argparse
import csv
import time
from pathlib import Path

from matplotlib.figure import Figure

from eurosat_finetune.cli import build_cli, show_progress_messages
from eurosat_finetune.cli.known_messages import quieted

DEFAULT_SIZES = ("10", "32", "100", "320", "1000", "3200", "all")


def run_size(size: str, epochs: int, out: Path, cli_args: list[str]) -> dict[str, float]:
    """Fit on ``size`` training images (``all``: the whole training split), then test."""
    train_size = [] if size == "all" else [f"--data.split.train_size={size}"]
    cli = build_cli(
        [
            *cli_args,
            *train_size,
            f"--trainer.max_epochs={epochs}",
            "--trainer.callbacks=[]",  # one-shot measurements: no early stopping, no checkpoints
            "--trainer.enable_checkpointing=false",
            "--trainer.logger=TensorBoardLogger",
            f"--trainer.logger.save_dir={out}",
            f"--trainer.logger.name=train_size_{size}",
            "--export.after_fit=false",
        ],
        run=False,
    )
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    (results,) = cli.trainer.test(cli.model, datamodule=cli.datamodule)
    # how sure each point is from the images it was tested on alone (Wilson's interval, as the test's report
    # gives it): the seed's spread is not in it
    interval = cli.model.test_intervals.accuracy
    return {
        "train_images": len(cli.datamodule.train_dataset),
        "test_acc": results["test_acc"],
        "test_images": cli.model.test_intervals.images,
        "test_acc_low": interval.low,
        "test_acc_high": interval.high,
        "test_macro_f1": results["test_macro_f1"],
        "seconds": round(time.perf_counter() - start, 1),
    }


def plot(rows: list[dict[str, float]], path: Path, title: str) -> None:
    """Test accuracy against training images (log x-axis), each point with its interval as an error bar."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    x = [r["train_images"] for r in rows]
    y = [100 * r["test_acc"] for r in rows]
    error = [
        [yi - 100 * r["test_acc_low"] for yi, r in zip(y, rows, strict=True)],
        [100 * r["test_acc_high"] - yi for yi, r in zip(y, rows, strict=True)],
    ]
    ax.errorbar(x, y, yerr=error, marker="o", capsize=3, label="test accuracy, 95% Wilson interval")
    for xi, yi in zip(x, y, strict=True):  # each figure beside its error bar, not on it
        ax.annotate(f"{yi:.1f}", (xi, yi), textcoords="offset points", xytext=(5, 3), ha="left", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("training images (each seen once per epoch)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="training-set sizes, or 'all'")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per fit (default: 1, each image seen once)")
    parser.add_argument("--out", type=Path, default=Path("runs/learning_curve"), help="output folder")
    parser.add_argument("--title", default="EuroSAT RGB: test accuracy vs training images")
    args, cli_args = parser.parse_known_args(argv)
    show_progress_messages()  # as `eurosat` does: its progress, and a warning for each old option name
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "learning_curve.csv"
    if csv_path.exists():
        raise SystemExit(f"error: {csv_path} exists; choose another --out to keep the earlier curve")

    rows = []
    with quieted():  # as `eurosat` does: libraries' messages known to be harmless (cli/known_messages.py)
        for size in args.sizes:
            rows.append(run_size(size, args.epochs, args.out, cli_args))
            print(f"learning curve: {rows[-1]}")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out / "learning_curve.png", args.title)
    print(f"Learning curve written to {csv_path} and {args.out / 'learning_curve.png'}")
    return rows


if __name__ == "__main__":
    main()
