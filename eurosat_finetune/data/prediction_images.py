"""Images ``eurosat predict`` classifies whole: decoded at their own size; one the model cannot take (another
band count) or that cannot be read is named with the reason, not fatal."""

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from eurosat_finetune.data.bands import EUROSAT_MS_BANDS
from eurosat_finetune.data.images import UNREADABLE_ERRORS, read_image, served
from eurosat_finetune.data.multispectral import TIFF_SUFFIXES, band_count, read_bands
from eurosat_finetune.errors import UserError

UNREADABLE = "unreadable"
RGB_BANDS = (1, 2, 3, 4)  # grey, grey and alpha, RGB, RGBA: what Pillow turns into RGB


class PredictionImages(Dataset):
    """Unlabelled images for ``predict`` at their own size, as ``(pixels, path, why)``: ``pixels`` None and
    ``why`` the reason for a file the model cannot take or that cannot be read. With ``bands`` (indices into
    the 13 stored bands) they are multispectral GeoTIFFs, served as in training."""

    def __init__(self, files: Sequence[Path], bands: Sequence[int] | None = None) -> None:
        self.files = list(files)
        self.bands = bands

    def __len__(self) -> int:
        return len(self.files)

    def takes(self) -> str:
        """What the model takes, in words."""
        if self.bands is None:
            return "RGB images (3 bands)"
        names = ", ".join(EUROSAT_MS_BANDS[i] for i in self.bands)
        return f"13-band GeoTIFFs as EuroSAT MS stores them (it reads {names})"

    def mismatch(self, path: Path) -> str | None:
        """Why the model cannot take ``path``, from its header alone; None if it can (or the header says
        nothing). Read before Pillow, whose libtiff prints a line for every TIFF of more bands than it decodes."""
        count = band_count(path)
        if self.bands is None:
            return None if count is None or count in RGB_BANDS else f"{count} bands; the model takes {self.takes()}"
        if path.suffix.lower() not in TIFF_SUFFIXES:
            return f"not a GeoTIFF; the model takes {self.takes()}"
        if count is not None and count != len(EUROSAT_MS_BANDS):
            return f"{count} band(s); the model takes {self.takes()}"
        return None

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, str, str | None]:
        path = self.files[index]
        why = self.mismatch(path)
        if why is not None:
            return None, str(path), why
        try:
            if self.bands is not None:
                return served(read_bands(path).numpy(), self.bands), str(path), None
            return read_image(path), str(path), None
        except UserError:
            raise
        except UNREADABLE_ERRORS:
            return None, str(path), UNREADABLE
