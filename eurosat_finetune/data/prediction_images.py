"""Images ``eurosat predict`` classifies whole: decoded at their own size, an unreadable one named, not fatal."""

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from eurosat_finetune.data.images import UNREADABLE_ERRORS, read_image, served
from eurosat_finetune.data.multispectral import read_bands
from eurosat_finetune.errors import UserError


class PredictionImages(Dataset):
    """Unlabelled images for ``predict`` at their own size; an unreadable file gives ``None``, not an error.
    With ``bands`` (indices into the 13 stored bands) they are multispectral GeoTIFFs, served as in training."""

    def __init__(self, files: Sequence[Path], bands: Sequence[int] | None = None) -> None:
        self.files = list(files)
        self.bands = bands

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, str]:
        path = self.files[index]
        try:
            if self.bands is not None:
                return served(read_bands(path).numpy(), self.bands), str(path)
            return read_image(path), str(path)
        except UserError:
            raise
        except UNREADABLE_ERRORS:
            return None, str(path)
