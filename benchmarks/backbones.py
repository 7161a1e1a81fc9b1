"""Training images/s of each backbone overlay's architecture (random weights), through the project's
own pipeline: cached uint8 batches, augmentation and preprocessing on the device, bf16 autocast on GPUs
that have it. The architectures are built from their configs, so no hub is needed.

    python benchmarks/backbones.py --image-size 64 --workers 2          # CPU, under a minute
    python benchmarks/backbones.py --image-size 224 --batch-size 128    # GPU
"""

import argparse
import json
import time
from pathlib import Path

import torch
from throughput import dataset_folder, forever, peak_memory, project_train_step, reset_peak, timed
from torch.utils.flop_counter import FlopCounterMode

from eurosat_finetune.data.datamodule import EuroSATDataModule
from eurosat_finetune.data.loaders import LoaderOptions
from eurosat_finetune.errors import ConfigError
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.options import InputOptions, NetworkOptions

# The architecture behind each overlay in configs/ (defaults of each config class are the named size).
ARCHITECTURES = {
    "vit-b16 (fit.yaml)": {"model_type": "vit"},
    "swin-t (swin_tiny.yaml)": {"model_type": "swin"},
    "convnext-t (convnext_tiny.yaml)": {"model_type": "convnext"},
    "dinov2-s (dinov2_small.yaml)": {
        "model_type": "dinov2",
        "hidden_size": 384,
        "num_attention_heads": 6,
        "image_size": 518,
        "patch_size": 14,
    },
    "efficientnet-b0 (efficientnet_b0.yaml)": {"model_type": "timm_wrapper", "architecture": "efficientnet_b0"},
}


def measure(name: str, dm: EuroSATDataModule, args: argparse.Namespace, device: torch.device, bf16: bool) -> dict:
    architecture = ARCHITECTURES[name]
    network = NetworkOptions(pretrained=None, architecture=architecture)
    model = ImageClassifier(dm.class_names, network, input=InputOptions(size=args.image_size)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = forever(dm.train_dataloader())

    reset_peak(device)
    images_per_s = timed(batches, project_train_step(model, optimizer, device, bf16), args.warmup, args.steps, device)
    parameters = sum(p.numel() for p in model.parameters())
    return {
        "parameters_m": round(parameters / 1e6, 1),
        f"forward_gflop_{args.image_size}px": forward_gflop(model, args.image_size, device),
        "forward_gflop_224px": forward_gflop(model, 224, device),
        "train_img_s": images_per_s,
        "peak_memory": peak_memory(device),
    }


def forward_gflop(model: ImageClassifier, size: int, device: torch.device) -> float:
    """GFLOPs of one image's forward pass at ``size`` px (torch's FLOP counter: matmuls and convolutions)."""
    model.image_size = size
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size, dtype=torch.uint8, device=device))
    model.train()
    return round(counter.get_total_flops() / 1e9, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="folder of <class>/<image> files")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--only", nargs="*", default=None, help="names (prefixes) of ARCHITECTURES to run")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    torch.set_float32_matmul_precision("high")
    folder = dataset_folder(args)
    dm = EuroSATDataModule(root=folder.parent, loader=LoaderOptions(args.batch_size, args.workers), augment=True)
    dm.prepare_data()
    dm.setup("fit")
    print(
        f"device {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, {args.image_size} px, "
        f"batch {args.batch_size}, {'bf16' if bf16 else 'fp32'}"
    )
    for name in ARCHITECTURES:
        if args.only and not any(name.startswith(prefix) for prefix in args.only):
            continue
        start = time.perf_counter()
        try:
            result = measure(name, dm, args, device, bf16)
        except ConfigError as err:  # e.g. Swin-T below 193 px
            print(json.dumps({"architecture": name, "error": str(err)}))
            continue
        print(json.dumps({"architecture": name, **result, "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
