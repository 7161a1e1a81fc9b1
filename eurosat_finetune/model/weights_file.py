"""A state dict from a URL or a local file: downloaded once into torch's hub cache, hash-checked, read on
the CPU.

Downloads go where ``torch.hub`` keeps checkpoints (``$TORCH_HOME/hub/checkpoints``, by default
``~/.cache/torch/hub/checkpoints``), under the URL's file name, so a file TorchGeo already fetched
there is found, and a file copied there by hand is used offline. As torch.hub's ``check_hash`` does,
a file name that ends in ``-<8 or more hex digits>`` before its extension names the start of the
file's SHA-256, which the download (and a file found in the cache) must match. The download is the
dataset's (:mod:`eurosat_finetune.tools.download`): a progress bar, retries, a dropped download resumed
by the next run, the file renamed into place last. One process downloads while the others of a job
wait on a lock.
"""

import logging
import re
from pathlib import Path
from urllib.parse import urlparse

import torch
from safetensors.torch import load_file

from eurosat_finetune.errors import DownloadError, ModelLoadError, first_line
from eurosat_finetune.tools.download import download_file, file_digest
from eurosat_finetune.tools.made_once import made_once

log = logging.getLogger(__name__)

# torch.hub's naming convention (load_state_dict_from_url's check_hash): name-<sha256 prefix>.ext
HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")


def is_url(location: str) -> bool:
    return urlparse(location).scheme in ("http", "https", "file")


def cache_folder() -> Path:
    """Where downloaded checkpoints are kept: torch.hub's, which ``TORCH_HOME`` moves."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def downloaded(url: str, option: str) -> Path:
    """The file at ``url`` in the cache, downloaded (and checked, where its name carries a hash) if it is
    not there yet; a mismatching download is a one-line error that leaves nothing behind, and one that
    stopped is resumed by the next call."""
    name = Path(urlparse(url).path).name
    target = cache_folder() / name
    match = HASH_IN_NAME.search(name)

    def download() -> Path:
        if match is None:
            log.warning("%s has no hash in its name (name-<sha256 prefix>.ext): its download is not checked", name)
        log.info("Downloading %s to %s", url, target)
        try:
            return download_file(
                url,
                target,
                expected=match and match.group(1),
                algorithm="sha256",
                option=option,
                by_hand=f"put it in {cache_folder()} as {name}, or give its path as {option}",
                mismatch_hint="try again, and if it persists the file on the server has changed",
                prefix=True,
            )
        except DownloadError as err:
            raise ModelLoadError(f"{option}: {err}") from None

    def found() -> Path | None:
        if not target.is_file():
            return None
        if match is not None:  # a file put in the cache by hand, by another tool or by another process
            check_hash(target, match.group(1), option)
        return target

    # a download is checked by download_file as it lands: only a file found in the cache is hashed here
    return made_once(cache_folder() / ".locks" / f"{name}.lock", found, download, f"downloading {name}")


def check_hash(path: Path, prefix: str, option: str) -> None:
    """Refuse a file whose SHA-256 does not start with the ``prefix`` its name carries."""
    digest = file_digest(path, "sha256")
    if not digest.startswith(prefix):
        raise ModelLoadError(
            f"{option}: {path} has SHA-256 {digest[:12]}..., not the {prefix} its name says; delete it to download "
            "it again (or give the path of a good copy)"
        )


def local_file(location: str, option: str, sha256_prefix: str | None = None) -> Path:
    """The file ``location`` names: a URL downloaded once (see :func:`downloaded`), or a path, checked
    against ``sha256_prefix`` if one is given (a copy of a known file)."""
    if is_url(location) and urlparse(location).scheme != "file":
        return downloaded(location, option)
    path = Path(urlparse(location).path if is_url(location) else location).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"{option}={location!r}: no such file; give a state dict file (.pth, .safetensors)")
    if sha256_prefix is not None:
        check_hash(path, sha256_prefix, option)
    return path


def read_state_dict(path: Path, option: str) -> dict[str, torch.Tensor]:
    """The tensors a ``.safetensors`` or ``torch.save`` file holds, on the CPU (only tensors are read:
    ``weights_only``, so a file cannot run code)."""
    try:
        if path.suffix == ".safetensors":
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # each format raises its own types
        raise ModelLoadError(
            f"{option}: cannot read {path} as a state dict ({first_line(err)}); give a .pth or .safetensors file"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(
            f"{option}: {path} is not a plain state dict (a dict of tensors, as timm's load_state_dict takes); "
            "save the network's state_dict() alone"
        )
    return state
