"""The model layer: the LightningModule (:class:`ImageClassifier`) and what builds, restores and
optimises it. ``eurosat_finetune.model.ImageClassifier`` is also the class path that every
``config.yaml`` and checkpoint written so far names."""

from eurosat_finetune.model.classifier import ImageClassifier

ViTClassifier = ImageClassifier  # its name before commit d5a0566, when it held ViTs only

__all__ = ["ImageClassifier", "ViTClassifier"]
