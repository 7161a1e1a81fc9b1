"""Images/s of the common ImageFolder pipeline and of this project's, side by side in one process, on
the same data.

ImageFolder: torchvision ImageFolder + PIL Resize + ToTensor + Normalize in DataLoader workers, fp32 model.
Project: EuroSATDataModule (JPEGs decoded once into a memory-mapped uint8 cache, uint8 batches at
64x64) with augmentation, resize and normalisation on the device, bf16 autocast on GPUs that have it.

Measures (a) data loading alone (model-ready batches on the device) and (b) full training steps
(forward, backward, optimizer step), the ratio project/imagefolder, peak memory, and on GPUs the model FLOP
utilisation. Random weights: throughput does not depend on them.

    python benchmarks/throughput.py --workers 2                       # CPU: small ViT, ~1 minute on 2 cores
    python benchmarks/throughput.py --model vit-b16 --batch-size 256 --steps 40 --workers 8   # GPU
"""

import argparse
import json
import os
import resource
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from torchvision import datasets, transforms
from transformers import ViTConfig, ViTForImageClassification

from eurosat_finetune.data.datamodule import EuroSATDataModule
from eurosat_finetune.data.loaders import LoaderOptions
from eurosat_finetune.data.patches.splits import stratified_split
from eurosat_finetune.data.patches.synthetic import write_sample_dataset
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.options import InputOptions, NetworkOptions
from eurosat_finetune.pixels import random_dihedral

REPO = Path(__file__).resolve().parents[1]
REAL_ZIP = REPO.parent / "shared" / "data" / "EuroSAT_RGB.zip"

MODELS = {
    # ViT-B/16, as google/vit-base-patch16-224 (86 M parameters)
    "vit-b16": {},
    # a small ViT with the same patching, for CPUs (5.5 M parameters)
    "small": {"hidden_size": 192, "num_hidden_layers": 12, "num_attention_heads": 3, "intermediate_size": 768},
    # the demo's tiny ViT (84 K parameters)
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128},
}

# Dense bf16 tensor-core peaks, FLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12}


def dataset_folder(args: argparse.Namespace) -> Path:
    """The EuroSAT folder to read: --data, else the real zip extracted once, else a synthetic sample."""
    if args.data is not None:
        return args.data
    workdir = REPO / "data" / "benchmark"
    if REAL_ZIP.is_file():
        if not (workdir / "EuroSAT_RGB").is_dir():
            workdir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=workdir))  # extract aside, rename when complete
            with zipfile.ZipFile(REAL_ZIP) as zf:
                zf.extractall(tmp)
            (tmp / "EuroSAT_RGB").rename(workdir / "EuroSAT_RGB")
            tmp.rmdir()
        return workdir / "EuroSAT_RGB"
    if not (workdir / "EuroSAT_RGB").is_dir():
        write_sample_dataset(workdir, images_per_class=300)
    return workdir / "EuroSAT_RGB"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS (process high-water mark)"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def timed(batches: Iterator, step: Callable, warmup: int, steps: int, device: torch.device) -> float:
    """Images/s of ``step(batch)`` over ``steps`` batches after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step(next(batches))
    synchronize(device)
    start, images = time.perf_counter(), 0
    for _ in range(steps):
        images += step(next(batches))
    synchronize(device)
    return images / (time.perf_counter() - start)


def forever(loader: DataLoader) -> Iterator:
    while True:
        yield from loader


def training_flops_per_image(config: ViTConfig, image_size: int) -> float:
    """Forward FLOPs of one image counted by PyTorch, times 3 (forward + backward)."""
    model = ViTForImageClassification(config).eval()
    # attention by its math kernel, of plain matmuls: the counter has no formula for SDPA's fused CPU kernel,
    # and would leave the attention scores out
    with FlopCounterMode(display=False) as counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        model(torch.zeros(1, 3, image_size, image_size), interpolate_pos_encoding=True)
    return 3.0 * counter.get_total_flops()


def project_train_step(
    model: ImageClassifier, optimizer: torch.optim.Optimizer, device: torch.device, bf16: bool
) -> Callable[[tuple], int]:
    """One training step of the project's path: uint8 batch to the device, augmentation, the model's
    own preprocessing, bf16 autocast where wanted; returns the number of images."""

    def train_step(batch: tuple) -> int:
        images, labels = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(random_dihedral(images)), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return len(images)

    return train_step


def measure_project(args: argparse.Namespace, folder: Path, device: torch.device, bf16: bool) -> dict:
    """The project's pipeline: cached uint8 batches, augmentation and preprocessing on the device."""
    results = {}
    start = time.perf_counter()
    dm = EuroSATDataModule(root=folder.parent, loader=LoaderOptions(args.batch_size, args.workers), augment=True)
    dm.prepare_data()  # builds the decode cache on first use
    dm.setup("fit")
    results["project_cache_ready_s"] = round(time.perf_counter() - start, 1)
    model = ImageClassifier(
        class_names=dm.class_names,
        network=NetworkOptions(pretrained=None, architecture=MODELS[args.model], freeze_backbone=args.freeze_backbone),
        input=InputOptions(size=args.image_size),
    ).to(device)
    if args.compile:
        model.net.compile()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batches = forever(dm.train_dataloader())

    def data_step(batch: tuple) -> int:
        images = random_dihedral(batch[0].to(device, non_blocking=True))
        model.preprocess(images)
        return len(images)

    train_step = project_train_step(model, optimizer, device, bf16)
    reset_peak(device)
    results["project_data_img_s"] = timed(batches, data_step, args.warmup, args.steps * 4, device)
    results["project_train_img_s"] = timed(batches, train_step, args.warmup, args.steps, device)
    results["project_peak_memory"] = peak_memory(device)
    return results


def measure_imagefolder(args: argparse.Namespace, folder: Path, device: torch.device, config: ViTConfig) -> dict:
    """The ImageFolder pipeline of the usual tutorials: PIL decode + Resize in DataLoader workers, fp32
    model, same training split."""
    results = {}
    transform = transforms.Compose(
        [transforms.Resize(args.image_size), transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)]
    )
    imagefolder_data = datasets.ImageFolder(str(folder), transform=transform)
    train, _, _ = stratified_split(imagefolder_data.targets, 0.1, 0.2, 0)
    loader = DataLoader(
        torch.utils.data.Subset(imagefolder_data, train.tolist()),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0,
    )
    model = ViTForImageClassification(config).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    batches = forever(loader)
    interpolate = args.image_size != config.image_size

    def data_step(batch: tuple) -> int:
        return len(batch[0].to(device, non_blocking=True))

    def train_step(batch: tuple) -> int:
        images, labels = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        logits = model(pixel_values=images, interpolate_pos_encoding=interpolate).logits
        F.cross_entropy(logits, labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return len(images)

    reset_peak(device)
    results["imagefolder_data_img_s"] = timed(batches, data_step, args.warmup, args.steps * 4, device)
    results["imagefolder_train_img_s"] = timed(batches, train_step, args.warmup, args.steps, device)
    results["imagefolder_peak_memory"] = peak_memory(device)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="folder of <class>/<image> files")
    parser.add_argument("--model", choices=sorted(MODELS), default=None, help="default: vit-b16 on GPU, small on CPU")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 128 on GPU, 32 on CPU")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--steps", type=int, default=None, help="timed batches per measurement (GPU 40, CPU 10)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--freeze-backbone", action="store_true", help="project model trains only its head")
    parser.add_argument("--compile", action="store_true", help="torch.compile the project model")
    parser.add_argument("--skip-imagefolder", action="store_true", help="measure only the project's pipeline")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device.type == "cuda"
    args.model = args.model or ("vit-b16" if on_gpu else "small")
    args.batch_size = args.batch_size or (128 if on_gpu else 32)
    args.steps = args.steps or (40 if on_gpu else 10)
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    bf16 = on_gpu and torch.cuda.is_bf16_supported()
    torch.manual_seed(0)
    folder = dataset_folder(args)
    config = ViTConfig(**MODELS[args.model], num_labels=10, attn_implementation="sdpa")
    results: dict = {
        "device": torch.cuda.get_device_name() if on_gpu else f"CPU ({os.cpu_count()} cores)",
        "model": args.model,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "project_precision": "bf16-mixed" if bf16 else "32-true",
        "freeze_backbone": args.freeze_backbone,
        "compile": args.compile,
    }
    print(json.dumps(results))

    results.update(measure_project(args, folder, device, bf16))
    if not args.skip_imagefolder:
        results.update(measure_imagefolder(args, folder, device, config))
        results["ratio_data"] = results["project_data_img_s"] / results["imagefolder_data_img_s"]
        results["ratio_train"] = results["project_train_img_s"] / results["imagefolder_train_img_s"]

    results["project_data_over_train"] = results["project_data_img_s"] / results["project_train_img_s"]
    flops = training_flops_per_image(config, args.image_size)
    if args.freeze_backbone:
        flops /= 3  # forward only through the frozen backbone
    results["train_gflop_per_image"] = flops / 1e9
    peak = next((p for name, p in PEAK_BF16.items() if on_gpu and name in results["device"]), None)
    if peak is not None:
        results["project_mfu"] = results["project_train_img_s"] * flops / peak
        if "imagefolder_train_img_s" in results:
            results["imagefolder_mfu"] = results["imagefolder_train_img_s"] * flops / peak

    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
