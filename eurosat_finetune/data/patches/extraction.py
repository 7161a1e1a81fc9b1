"""Extract a zip archive so that a reader sees all of it or nothing, with progress by file.

Only a damaged archive is a :class:`DownloadError` (its caller removes an archive it downloaded); a
disk too small or a folder in the way is an :class:`OutputError`, which keeps the archive.

Members go to a temporary folder inside the destination, which is renamed into place only once every
member is written; each member's CRC is checked as it is read, so a corrupt archive stops the
extraction and leaves no half-extracted folder. The temporary name is fixed: a re-run (which holds the
dataset lock, see :mod:`.made_once`) removes what a killed run left.
"""

import os
import shutil
import zipfile
from pathlib import Path

from eurosat_finetune.errors import DownloadError, OutputError
from eurosat_finetune.tools.download import check_free_space
from eurosat_finetune.tools.progress import progress_bar


def extract_zip(archive: Path, dest_dir: Path) -> list[Path]:
    """Extract ``archive`` into ``dest_dir``; return the top-level paths it created. Existing paths are
    never overwritten."""
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = dest_dir / f".{archive.stem}.extracting"
    shutil.rmtree(tmp_dir, ignore_errors=True)  # left by a killed extraction
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                check_free_space(dest_dir, sum(member.file_size for member in members), f"extracting {archive}")
                tmp_dir.mkdir()
                files = sum(not member.is_dir() for member in members)
                with progress_bar(files, f"Extracting {archive.name}", " files") as bar:
                    for member in members:
                        zf.extract(member, tmp_dir)  # checks the member's CRC as it reads it
                        bar.update(not member.is_dir())
        except (zipfile.BadZipFile, EOFError) as err:
            raise DownloadError(f"{archive} is not a valid zip file ({err}); delete it and download it again") from None
        created = [dest_dir / child.name for child in sorted(tmp_dir.iterdir())]
        for target in created:
            if target.exists():
                raise OutputError(
                    f"cannot extract {archive}: {target} already exists; move it away or point data.root at it"
                )
        for target in created:
            os.replace(tmp_dir / target.name, target)
        return created
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
