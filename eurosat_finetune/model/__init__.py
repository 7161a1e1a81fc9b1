"""The model layer: the LightningModule (:class:`ImageClassifier`) and what builds, restores and
optimises it. ``eurosat_finetune.model.ImageClassifier`` is also the class path that every
``config.yaml`` and checkpoint written so far names."""

import warnings

from eurosat_finetune.model.classifier import ImageClassifier

__all__ = ["ImageClassifier"]  # not ViTClassifier: ``import *`` would warn


def vit_classifier(stacklevel: int = 3) -> type[ImageClassifier]:
    """``ViTClassifier``, :class:`ImageClassifier`'s name before commit d5a0566 (when it held ViTs only), which
    code and configs of 0.1.0 may name; it warns once per use. The default ``stacklevel`` points the warning
    at the code that named it through a module's ``__getattr__``."""
    warnings.warn(
        "ViTClassifier is deprecated: it is ImageClassifier (eurosat_finetune.ImageClassifier), the same class",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return ImageClassifier


def __getattr__(name: str) -> type[ImageClassifier]:
    if name == "ViTClassifier":
        return vit_classifier()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
