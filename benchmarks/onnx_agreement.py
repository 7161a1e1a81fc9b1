"""How closely `eurosat predict`'s CSV and the exported `model.onnx` agree, per precision.

For each precision: `eurosat fit --config configs/demo.yaml --export.onnx true` at that precision (tiny ViT,
synthetic data, on the CPU), then `eurosat predict` from `best.ckpt` at the same precision on a held-out
probe (a synthetic sample of another seed, never trained on), then onnxruntime on the same images' uint8
pixels. Reported: the largest absolute difference of any class probability, and how many images get
another top class. The ONNX graph is float32 whatever the run's precision; `eurosat predict` computes the
network in bf16 under `bf16-mixed` (autocast) and `bf16-true` (bf16 weights). On a CPU, Lightning runs
`16-mixed` as `bf16-mixed` (it says so), so fp16 is measured only where a GPU runs this script.

    python benchmarks/onnx_agreement.py                                 # 32-true, bf16-mixed, bf16-true
    python benchmarks/onnx_agreement.py --precisions 32-true --json out.json
"""

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image

from eurosat_finetune.cli import main as eurosat
from eurosat_finetune.data.patches.synthetic import write_sample_dataset

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def run(args: list[str]) -> None:
    sys.argv = sys.argv[:1]  # the CLI gets ``args`` only, not this script's options
    try:
        eurosat(args)
    except SystemExit as exit:
        if exit.code not in (0, None):
            raise


def agreement(precision: str, accelerator: str, probe: Path, work: Path) -> dict[str, object]:
    """Fit the demo at ``precision``, predict the probe from its best checkpoint, and compare with onnxruntime."""
    runs = work / precision / "runs"
    options = [*QUIET, f"--trainer.accelerator={accelerator}", f"--trainer.precision={precision}"]
    run(["fit", "--config", str(REPO / "configs" / "demo.yaml"), *options, "--export.onnx=true",
         f"--data.root={work / 'demo'}", f"--trainer.logger.init_args.save_dir={runs}"])  # fmt: skip
    folder = runs / "demo" / "version_0"
    output = work / precision / "predictions.csv"
    run(["predict", *options, f"--ckpt_path={folder / 'checkpoints' / 'best.ckpt'}",
         f"--data.predict_root={probe}", f"--predictions.output={output}",
         f"--trainer.default_root_dir={work / precision / 'predict'}"])  # fmt: skip
    session = onnxruntime.InferenceSession(folder / "huggingface" / "model.onnx")
    classes = json.loads(session.get_modelmeta().custom_metadata_map["class_names"])
    with open(output) as f:
        rows = list(csv.DictReader(f))
    pixels = np.stack([np.asarray(Image.open(row["path"]).convert("RGB")).transpose(2, 0, 1) for row in rows])
    onnx_probs = session.run(None, {"pixels": pixels})[0]
    csv_probs = np.array([[float(row[name]) for name in classes] for row in rows])
    return {
        "precision": precision,
        "accelerator": accelerator,
        "images": len(rows),
        "max_abs_difference": float(np.abs(onnx_probs - csv_probs).max()),
        "other_top_class": int((onnx_probs.argmax(axis=1) != csv_probs.argmax(axis=1)).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed", "bf16-true"])
    parser.add_argument("--accelerator", default="cpu", help="where fit and predict run (cuda: fp16 too)")
    parser.add_argument("--probe-per-class", type=int, default=20, help="held-out images per class")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sample = write_sample_dataset(work / "probe", images_per_class=args.probe_per_class, image_size=64, seed=1)
        probe = work / "probe-images"  # one folder of images, as `eurosat predict` gets new ones
        probe.mkdir()
        for image in sorted(sample.rglob("*.jpg")):
            (probe / image.name).write_bytes(image.read_bytes())
        measured = [agreement(precision, args.accelerator, probe, work) for precision in args.precisions]
    print(json.dumps(measured, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(measured, indent=2))


if __name__ == "__main__":
    main()
