"""Training images/s of the tutorial's pipeline and of `eurosat fit`, under the same Lightning Trainer.

Tutorial: torchvision ImageFolder + PIL Resize + ToTensor + Normalize in DataLoader workers, float32
batches at the model's size, fp32 model (the usual fine-tuning tutorial, Lightning edition).
Package: `eurosat fit` itself (run in this process through its CLI): decode cache, uint8 batches
at 64x64, augmentation, resize and normalisation on the device, the precision given (bf16-mixed on GPUs).

Both train the same architecture (random weights: speed does not depend on them) on the same training
split, and both are measured by the throughput callback every `eurosat fit` logs (images/s over the last
--window batches, so start-up and compilation are left out); MFU counts 3 forward passes per training
image against the GPU's dense bf16 peak.

    python benchmarks/pipelines.py --workers 2      # CPU: a small ViT at 224 px, ~2 minutes on 2 cores
    python benchmarks/pipelines.py --model vit-b16 --batch-size 256 --steps 80 --workers 12 \\
        --precision bf16-mixed --compile            # GPU: ViT-B/16 at 224 px
"""

import argparse
import csv
import json
import tempfile
import zipfile
from pathlib import Path

import torch
import yaml
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from eurosat_finetune.cli import build_cli
from eurosat_finetune.data.patches.splits import stratified_split
from eurosat_finetune.data.patches.synthetic import write_sample_dataset
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.options import InputOptions, NetworkOptions
from eurosat_finetune.outputs.throughput import TrainingThroughput

REPO = Path(__file__).resolve().parents[1]
REAL_ZIP = REPO.parent / "shared" / "data" / "EuroSAT_RGB.zip"

MODELS = {
    "vit-b16": {"model_type": "vit"},  # ViTConfig's defaults: ViT-B/16 at 224, as google/vit-base-patch16-224
    "small": {
        "model_type": "vit",
        "hidden_size": 192,
        "num_hidden_layers": 12,
        "num_attention_heads": 3,
        "intermediate_size": 768,
    },
    "cpu-recipe": {  # configs/cpu.yaml's ResNet
        "model_type": "resnet",
        "embedding_size": 32,
        "hidden_sizes": [32, 64, 128, 256],
        "depths": [2, 2, 1, 1],
        "layer_type": "basic",
    },
    "resnet18q": {  # the CPU recipe's ResNet until 2026-12-01: ResNet-18's layout at a quarter of its width
        "model_type": "resnet",
        "embedding_size": 32,
        "hidden_sizes": [32, 64, 128, 256],
        "depths": [2, 2, 2, 2],
        "layer_type": "basic",
    },
    "tiny": {
        "model_type": "vit",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 128,
    },
}

# Dense bf16 tensor-core peaks, FLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12}

# ViT-B/16's image processor's normalisation (0.5 everywhere), for both pipelines
MEAN, STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]


def dataset_folder(data: Path | None) -> Path:
    """The EuroSAT folder to read: --data, else the real zip extracted once, else a synthetic sample."""
    if data is not None:
        return data
    workdir = REPO / "data" / "benchmark"
    if REAL_ZIP.is_file():
        if not (workdir / "EuroSAT_RGB").is_dir():
            with zipfile.ZipFile(REAL_ZIP) as archive:
                archive.extractall(workdir)
        return workdir / "EuroSAT_RGB"
    write_sample_dataset(workdir / "sample", images_per_class=200, seed=0)
    return workdir / "sample"


class TutorialClassifier(ImageClassifier):
    """The same network, fed batches that the DataLoader workers already resized and normalised."""

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return images


class TutorialData(LightningDataModule):
    """ImageFolder + PIL Resize + ToTensor + Normalize in workers, on the package's training split."""

    def __init__(self, folder: Path, image_size: int, batch_size: int, workers: int) -> None:
        super().__init__()
        transform = transforms.Compose(
            [transforms.Resize(image_size), transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
        )
        self.images = datasets.ImageFolder(str(folder), transform=transform)
        self.train = stratified_split(self.images.targets, 0.1, 0.2, 0).train
        self.batch_size, self.workers = batch_size, workers

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            Subset(self.images, self.train.tolist()),
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.workers > 0,
            drop_last=True,
        )


def trainer_settings(args: argparse.Namespace, precision: str) -> dict:
    return {
        "accelerator": "auto",
        "devices": 1,
        "max_steps": args.steps,
        "precision": precision,
        "limit_val_batches": 0,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "log_every_n_steps": 1,
    }


def measured(log_dir: Path) -> dict:
    """The last windowed images/s and FLOP/s the throughput callback logged."""
    rows = list(csv.DictReader((log_dir / "metrics.csv").open()))
    last = {key: float(row[key]) for row in rows for key in row if key.startswith("train/") and row[key]}
    return {"img_s": last["train/device/samples_per_sec"], "flop_s": last.get("train/device/flops_per_sec", 0.0)}


def run_package(args: argparse.Namespace, folder: Path, workdir: Path) -> dict:
    config = {
        "seed_everything": 0,
        "trainer": {
            **trainer_settings(args, args.precision),
            "logger": {"class_path": "CSVLogger", "init_args": {"save_dir": str(workdir), "name": "package"}},
        },
        "model": {
            "network": {"pretrained": None, "architecture": MODELS[args.model], "torch_compile": args.compile},
            "input": {"size": args.image_size, "mean": MEAN, "std": STD},
        },
        "data": {"root": str(folder), "augment": True, "batch_size": args.batch_size, "num_workers": args.workers},
        "throughput": {"window_size": args.window},
        "export": {"after_fit": False},
    }
    path = workdir / "package.yaml"
    path.write_text(yaml.safe_dump(config))
    build_cli(["fit", "--config", str(path)])
    return measured(workdir / "package" / "version_0")


def run_tutorial(args: argparse.Namespace, folder: Path, workdir: Path) -> dict:
    data = TutorialData(folder, args.image_size, args.batch_size, args.workers)
    network = NetworkOptions(pretrained=None, architecture=MODELS[args.model])
    model = TutorialClassifier(data.images.classes, network, input=InputOptions(size=args.image_size))
    logger = CSVLogger(workdir, name="tutorial")
    trainer = Trainer(
        **trainer_settings(args, args.tutorial_precision),
        logger=logger,
        callbacks=[TrainingThroughput(window_size=args.window)],
    )
    trainer.fit(model, datamodule=data)
    return measured(Path(logger.log_dir))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="small")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40, help="training steps of each pipeline")
    parser.add_argument("--window", type=int, default=20, help="batches the images/s are averaged over (the last)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--precision", default="32-true", help="the package's trainer.precision (bf16-mixed on GPUs)")
    parser.add_argument("--tutorial-precision", default="32-true")
    parser.add_argument("--compile", action="store_true", help="the package with model.network.torch_compile=true")
    parser.add_argument("--skip-tutorial", action="store_true")
    parser.add_argument("--skip-package", action="store_true")
    parser.add_argument("--data", type=Path, default=None, help="an EuroSAT-layout folder (default: the real data)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.steps <= args.window:
        parser.error("--steps must exceed --window (the rates are averaged over the last --window steps)")

    folder = dataset_folder(args.data)
    results: dict = {"model": args.model, "image_size": args.image_size, "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_package:
            results["package"] = run_package(args, folder, Path(tmp))
        if not args.skip_tutorial:
            results["tutorial"] = run_tutorial(args, folder, Path(tmp))
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        results["device"] = name
        peak = next((flops for key, flops in PEAK_BF16.items() if key in name), None)
        for run in ("package", "tutorial"):
            if peak and run in results:
                results[run]["mfu"] = results[run]["flop_s"] / peak
    if "tutorial" in results and "package" in results:
        results["ratio"] = results["package"]["img_s"] / results["tutorial"]["img_s"]
    print(json.dumps(results, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
