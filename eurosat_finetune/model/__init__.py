"""The model layer: the LightningModule (:class:`ImageClassifier`) and what builds, restores and
optimises it. ``eurosat_finetune.model.ImageClassifier`` is also the class path that every
``config.yaml`` and checkpoint written so far names."""

from eurosat_finetune.model.classifier import ImageClassifier, ViTClassifier

__all__ = ["ImageClassifier", "ViTClassifier"]
