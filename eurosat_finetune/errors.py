"""Errors the user can fix. The CLI prints their message as one line (no traceback) and exits 2.

Each also derives from the built-in exception it specialises, so Python callers can catch either.
"""


def first_line(err: BaseException) -> str:
    """The first non-blank line of an error's message (library messages run over several), else its type."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 point``, ``2 points``: a count with its noun in number (``plural`` where not the noun + s)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


class UserError(Exception):
    """Bad input or a refused action; the message names the file or option and says what to do."""


class DataNotFoundError(UserError, FileNotFoundError):
    """No dataset, no images, or a folder that should hold images holds none."""


class UnreadableImageError(UserError, OSError):
    """Image files that Pillow cannot decode."""


class ConfigError(UserError, ValueError):
    """Option values that cannot work together (fractions, sizes, class lists)."""


class OutsideAreaError(ConfigError):
    """A scene that does not reach the area ``data.maps.area`` (or a search's bbox) asks to map."""


class SplitMismatchError(UserError, ValueError):
    """A checkpoint evaluated or resumed on another train/val/test split than it was trained with."""


class ClassMismatchError(UserError, ValueError):
    """A checkpoint whose classes differ from the data's."""


class CheckpointError(UserError, ValueError):
    """A ``--ckpt_path`` that does not exist or is not a checkpoint."""


class ModelLoadError(UserError, OSError):
    """A ``model.network.pretrained`` that cannot be loaded."""


class OutputError(UserError, OSError):
    """An output that would overwrite an earlier result, or a folder that cannot be written."""


class DownloadError(UserError, RuntimeError):
    """A download or extraction failed; the message says what was expected and what to do."""


class BandError(UserError, ValueError):
    """A band the data does not have, or an image with another band count than the dataset's."""


class ExportError(UserError, RuntimeError):
    """An export that cannot be written: a missing extra, or a model family the format cannot hold."""


class CacheError(UserError, OSError):
    """A damaged decode cache that cannot be rebuilt where it lies."""


class CatalogueError(UserError, OSError):
    """A STAC catalogue, item or search that cannot be reached or read, or the ``stac`` extra not installed."""


class ReferencePointsError(UserError, ValueError):
    """Reference points for a map's accuracy that cannot be read: no such file, a missing column, a class the
    model does not have, a coordinate or CRS that is not one."""
