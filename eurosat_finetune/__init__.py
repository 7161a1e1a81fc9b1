"""Fine-tune a pretrained image classifier (a Vision Transformer by default) on EuroSAT RGB with LightningCLI."""

from eurosat_finetune.datamodule import EuroSATDataModule
from eurosat_finetune.model import ImageClassifier, ViTClassifier

__all__ = ["EuroSATDataModule", "ImageClassifier", "ViTClassifier"]
__version__ = "0.1.0"
