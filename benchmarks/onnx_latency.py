"""ONNX export: file size, and onnxruntime against torch latency per image on this machine's CPU.

A randomly initialised network of the chosen size (speed does not depend on the weights) is exported as
`--export.onnx true` exports it (raw uint8 pixels of --input-size in, the resize to --image-size, scaling
and normalisation inside the graph, probabilities out). The same batches then run through onnxruntime
and through the PyTorch module (`ImageClassifier.forward` + softmax, eval, no grad), several times each;
the median is reported.

    python benchmarks/onnx_latency.py                                   # ViT-B/16 at 224 px from 64 px pixels
    python benchmarks/onnx_latency.py --model tiny --image-size 64      # a quick look
"""

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from pipelines import MODELS  # the same networks as the pipelines benchmark (this folder is on sys.path)

from eurosat_finetune.data.patches.published import EUROSAT_CLASSES
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.options import NetworkOptions
from eurosat_finetune.outputs.onnx_export import export_onnx


def median_ms_per_image(run: Callable[[np.ndarray], object], batch: np.ndarray, repeats: int) -> float:
    run(batch)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / len(batch)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="vit-b16")
    parser.add_argument("--image-size", type=int, default=224, help="the model's input size")
    parser.add_argument("--input-size", type=int, default=64, help="the stored images' size (EuroSAT: 64)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    config = {**MODELS[args.model], "image_size": args.image_size}
    model = ImageClassifier(list(EUROSAT_CLASSES), NetworkOptions(pretrained=None, architecture=config)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", (args.input_size, args.input_size))
        size_mb = path.stat().st_size / 1e6
        session = onnxruntime.InferenceSession(path)
        measured = {"model": args.model, "image_size": args.image_size, "onnx_mb": round(size_mb, 1),
                    "threads": torch.get_num_threads()}  # fmt: skip
        rng = np.random.default_rng(0)
        for batch_size in args.batch_sizes:
            batch = rng.integers(0, 256, (batch_size, 3, args.input_size, args.input_size), dtype=np.uint8)

            def torch_run(pixels: np.ndarray) -> None:
                with torch.no_grad():
                    model(torch.from_numpy(pixels)).softmax(dim=-1)

            measured[f"onnxruntime_ms_per_image_batch_{batch_size}"] = round(
                median_ms_per_image(lambda p: session.run(None, {"pixels": p}), batch, args.repeats), 2
            )
            measured[f"torch_ms_per_image_batch_{batch_size}"] = round(
                median_ms_per_image(torch_run, batch, args.repeats), 2
            )
    print(json.dumps(measured, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(measured, indent=2))


if __name__ == "__main__":
    main()
