"""Fine-tune a pretrained Vision Transformer on EuroSAT RGB with LightningCLI."""

from eurosat_finetune.datamodule import EuroSATDataModule
from eurosat_finetune.model import ViTClassifier

__all__ = ["EuroSATDataModule", "ViTClassifier"]
__version__ = "0.1.0"
