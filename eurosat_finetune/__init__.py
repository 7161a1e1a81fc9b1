"""Fine-tune a pretrained image classifier (a Vision Transformer by default) on EuroSAT with LightningCLI.

The code is layered; each layer imports only from those before it:

- ``errors``, ``pixels`` (the pixel contract shared by training and export), ``renamed_options`` (the
  options' old names) and ``tools`` (downloads, locks, progress, seeds);
- ``data``: what training and mapping share, and its two rooms: ``data.patches`` (the labelled images:
  found or downloaded, decoded once, split and served) and ``data.scenes`` (scenes cut into windows);
- ``model``: the LightningModule and what builds, restores and optimises it;
- ``outputs``: callbacks that write a run's results into its run folder;
- ``cli``: the ``eurosat`` command, and ``learning_curve``, which drives it.
"""

import importlib.metadata
from typing import Any

__version__ = importlib.metadata.version("eurosat-finetune")  # pyproject.toml's, the one version number
__all__ = ["EuroSATDataModule", "ImageClassifier", "__version__"]  # not ViTClassifier: ``import *`` would warn


def __getattr__(name: str) -> Any:
    # imported on first use, so ``import eurosat_finetune.errors`` does not load torch and transformers
    if name == "EuroSATDataModule":
        from eurosat_finetune.data.datamodule import EuroSATDataModule

        return EuroSATDataModule
    if name == "ImageClassifier":
        from eurosat_finetune.model import ImageClassifier

        return ImageClassifier
    if name == "ViTClassifier":  # ImageClassifier's name in 0.1.0, with a DeprecationWarning
        from eurosat_finetune.model import vit_classifier

        return vit_classifier()
    raise AttributeError(f"module 'eurosat_finetune' has no attribute {name!r}")
