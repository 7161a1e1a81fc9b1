"""The predict contract: what ``predict`` batches hold, for whole images and for scene windows alike.

Both reach ``predict_step`` as dicts. ``images`` is what the model classifies; ``kind`` says which of
the two a batch is, and so which writer its results are addressed to; every other key is metadata
that ``predict_step`` returns unchanged beside the class probabilities (``probs``):

- ``kind: "images"``, images classified whole (the predictions CSV): ``images`` a list of uint8
  ``(3, H, W)`` tensors (their sizes may differ), ``paths`` their files, and ``left_out`` the
  ``(file, why)`` of each file of the batch the model cannot take (another band count) or that cannot be read;
- ``kind: "scene_windows"``, windows of scenes (the land-cover maps), batched by their dataset
  (:class:`eurosat_finetune.data.scenes.windows.SceneWindows`): ``images`` a uint8 (RGB) or int32 (multispectral)
  ``(B, C, t, t)`` tensor, and per window its ``scene`` (index), ``row``, ``col`` and ``valid`` (false
  for a window less than half of which holds data); ``failed`` lists ``(scene, why)`` for a scene whose
  files failed while it was read (in a batch of no windows).
"""

from typing import Any

import torch

IMAGES = "images"
SCENE_WINDOWS = "scene_windows"


def collate_images(items: list[tuple[torch.Tensor | None, str, str | None]]) -> dict[str, Any]:
    """Keep images as a list (their sizes may differ); set those left out (``None``) aside with why."""
    return {
        "kind": IMAGES,
        "images": [image for image, _, _ in items if image is not None],
        "paths": [path for image, path, _ in items if image is not None],
        "left_out": [(path, why) for image, path, why in items if image is None],
    }
