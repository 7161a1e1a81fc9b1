"""Where a dataset folder comes from: found under ``data.root``, downloaded and extracted, or written
as a synthetic sample; exactly once, whichever and however many processes ask (see :mod:`.made_once`)."""

import logging
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from eurosat_finetune.data.images import image_files
from eurosat_finetune.data.patches.extraction import extract_zip
from eurosat_finetune.data.patches.synthetic import SAMPLE_TMP_NAME, write_sample_dataset
from eurosat_finetune.errors import DataNotFoundError, DownloadError, OutputError, UserError
from eurosat_finetune.tools.download import download_file
from eurosat_finetune.tools.made_once import made_once

log = logging.getLogger(__name__)

EUROSAT_RGB_URL = "https://zenodo.org/records/7711810/files/EuroSAT_RGB.zip?download=1"
"""EuroSAT RGB on Zenodo (record 7711810), layout ``EuroSAT_RGB/<Class>/<Class>_<n>.jpg``."""

DATASET_FOLDERS = ("EuroSAT_RGB", "2750")
"""Top-level folders of the two published EuroSAT RGB zips (Zenodo's and the older ``EuroSAT.zip``)."""

MS_DATASET_FOLDERS = ("EuroSAT_MS", "ds/images/remote_sensing/otherDatasets/sentinel_2/tif")
"""Where the two published EuroSAT MS zips keep their class folders (Zenodo's, and TorchGeo's
``EuroSATallBands.zip``)."""

LOCK_NAME = ".eurosat-data.lock"


def find_image_folder(root: Path) -> Path | None:
    """Return the folder whose sub-folders are the classes, or None if ``root`` holds no dataset.

    Accepts ``root/EuroSAT_RGB/<Class>``, ``root/2750/<Class>``, the two EuroSAT MS layouts and
    ``root/<Class>``. Reads only.
    """
    for name in (*DATASET_FOLDERS, *MS_DATASET_FOLDERS):
        if (root / name).is_dir():
            return root / name
    if root.is_dir() and any(d.is_dir() and not d.name.startswith(".") and image_files(d) for d in root.iterdir()):
        return root
    return None


@dataclass(frozen=True)
class DownloadOptions:
    """Where the dataset is downloaded from when ``data.root`` holds none (``data.download``).

    Args:
        enabled: Download the zip at ``url`` and extract it into ``data.root`` when no images are found there.
        url: Where to download the dataset zip from (an ``http(s)://`` or ``file://`` url).
        md5: Expected md5 of the downloaded zip; null skips the check (the computed md5 is logged).
    """

    enabled: bool = False
    url: str = EUROSAT_RGB_URL
    md5: str | None = None


@dataclass(frozen=True)
class DatasetSource:
    """Where the images are and how to get them: ``data.root``, ``data.download`` and
    ``data.synthetic_images_per_class``."""

    root: Path
    download: DownloadOptions = DownloadOptions()
    synthetic_images_per_class: int = 0

    @property
    def can_provide(self) -> bool:
        return self.download.enabled or self.synthetic_images_per_class > 0

    @property
    def archive_path(self) -> Path:
        """Where a downloaded zip is kept (its name taken from the url)."""
        return self.root / (Path(self.download.url.split("?", 1)[0]).name or "dataset.zip")

    def image_folder(self) -> Path:
        """The folder of ``<class>/<image>`` files: found, else downloaded or generated, once."""
        if find_image_folder(self.root) is None and not self.can_provide:
            raise DataNotFoundError(
                f"no images found under data.root={str(self.root)!r} (looked for "
                f"{' and '.join(str(self.root / n) for n in DATASET_FOLDERS)} and for class folders in "
                f"{self.root}). Set data.download.enabled=true to fetch {self.download.url}, or point data.root at a "
                "folder of <class>/<image> files"
            )
        synthetic = self.synthetic_images_per_class > 0
        what = "writing the sample dataset" if synthetic else f"downloading {self.download.url}"
        find = partial(find_image_folder, self.root)
        try:
            return made_once(self.root / LOCK_NAME, find, self._make, f"{what} in {self.root}")
        except OSError as err:
            if isinstance(err, UserError):
                raise
            raise OutputError(
                f"cannot write to data.root={str(self.root)!r} ({err.strerror or err}); point data.root at a "
                "writable folder to download or write the dataset there"
            ) from None

    def _make(self) -> Path:
        """Runs under the lock, so whatever temporary files exist were left by a killed process."""
        if self.synthetic_images_per_class > 0:
            shutil.rmtree(self.root / SAMPLE_TMP_NAME, ignore_errors=True)
            log.info("Writing a synthetic sample dataset to %s", self.root)
            return write_sample_dataset(self.root, self.synthetic_images_per_class)
        return self._download_and_extract()

    def _download_and_extract(self) -> Path:
        downloaded = not self.archive_path.is_file()
        if downloaded:
            log.info("Downloading %s to %s", self.download.url, self.archive_path)
            download_file(
                self.download.url,
                self.archive_path,
                expected=self.download.md5,
                algorithm="md5",
                option="data.download.url",
                by_hand=f"place it at {self.archive_path} (or extract it under {self.root})",
                mismatch_hint="check data.download.url and data.download.md5 (null skips the check)",
            )
        try:
            extract_zip(self.archive_path, self.root)
        except DownloadError:
            if downloaded:  # ours and useless; an archive the user placed there is never deleted
                self.archive_path.unlink()
            raise
        folder = find_image_folder(self.root)
        if folder is None:
            raise DataNotFoundError(
                f"{self.archive_path} extracted into {self.root}, but no <class>/<image> folders "
                "were found there; check data.download.url"
            )
        return folder
