"""Libraries' messages known to be harmless, silenced while ``eurosat`` runs (cli/known_messages.py)."""

import ast
import importlib
import inspect
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST, TINY_VIT, run_cli, version_dir, write_config

from eurosat_finetune.cli.known_messages import KNOWN_MESSAGES, SHOW_ALL, KnownMessage, quieted


def literal_texts(module: str) -> list[str]:
    """Every string literal of ``module``'s source, adjacent literals joined and each f-string's fields as ``x``."""
    texts = []
    for node in ast.walk(ast.parse(inspect.getsource(importlib.import_module(module)))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append(node.value)
        elif isinstance(node, ast.JoinedStr):
            texts.append("".join(v.value if isinstance(v, ast.Constant) else "x" for v in node.values))
    return texts


def rasterio_message() -> str:
    """rasterio's warning text is in its compiled code: what it says today, opening an image with no georeferencing."""
    import rasterio
    from PIL import Image

    with Path(__file__).parent.joinpath(".known-messages.png").open("wb") as file:
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(file, format="PNG")
        path = file.name
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rasterio.open(path).close()
    finally:
        Path(path).unlink()
    return str(next(w.message for w in caught if issubclass(w.category, rasterio.errors.NotGeoreferencedWarning)))


@pytest.mark.parametrize("known", KNOWN_MESSAGES, ids=lambda known: known.source)
def test_each_pattern_matches_its_library_s_current_text(known: KnownMessage) -> None:
    """A library that rewords a message fails here, rather than its message being shown again unnoticed."""
    flags = re.IGNORECASE if known.logger is None else 0  # as warnings.filterwarnings, as the logging filter
    texts = [rasterio_message()] if known.source.startswith("rasterio") else literal_texts(known.source)
    assert any(re.match(known.pattern, text, flags) for text in texts), f"{known.source} no longer says {known.pattern}"


def test_quieted_silences_by_text_and_environment_shows_all(monkeypatch: pytest.MonkeyPatch) -> None:
    dirpath = "The dirpath has changed from 'a' to 'b', therefore ... won't be reloaded. Only ..."
    for show_all, expected in (("", 1), ("1", 2)):
        monkeypatch.setenv(SHOW_ALL, show_all)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with quieted():
                warnings.warn(dirpath, UserWarning, stacklevel=1)
                warnings.warn("a real warning", UserWarning, stacklevel=1)
        assert len(caught) == expected, [str(w.message) for w in caught]
    assert not warnings.filters or not any(  # nothing left behind
        getattr(f[1], "pattern", None) == KNOWN_MESSAGES[1].pattern for f in warnings.filters
    )


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.slow  # an end-to-end predict: the full suite; the filter's own tests stay quick
def test_a_real_run_shows_none_of_them_and_still_a_real_warning(
    sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    import json

    # Lightning suggests workers only where the machine has cores to spare: as on a user's machine
    monkeypatch.setattr("lightning.pytorch.trainer.connectors.data_connector.suggested_max_num_workers", lambda _: 8)
    logs = tmp_path / "logs"
    config = write_config(tmp_path / "run.yaml", sample_root, logs, max_epochs=1)
    model = ["--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]
    short = ["--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1", "--export.after_fit=false"]
    run_cli(["fit", "--config", str(config), *FAST, *model, *short])
    best = version_dir(logs, 0) / "checkpoints" / "best.ckpt"
    kept = Kept()
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addHandler(kept)
    try:
        recwarn.clear()
        images = min(path for path in (sample_root / "EuroSAT_RGB").iterdir() if path.is_dir())  # one class's JPEGs
        predict = ["predict", "--config", str(config), *FAST, f"--data.predict_root={images}"]
        run_cli([*predict, "--data.num_workers=0", "--ckpt_path", str(best)])  # an old name: a real warning
    finally:
        logging.getLogger("lightning.pytorch.utilities.rank_zero").removeHandler(kept)
    warned = [str(w.message) for w in recwarn]
    for known in KNOWN_MESSAGES:
        shown = warned if known.logger is None else kept.messages
        assert not [m for m in shown if re.match(known.pattern, m, re.IGNORECASE)], known.pattern
    assert any("data.num_workers is now data.loader.num_workers" in m for m in warned), warned
    assert any(m.startswith("Restoring states from the checkpoint") for m in kept.messages), kept.messages

    # the same run without the table: each message is there to be silenced (the test is not vacuous)
    monkeypatch.setenv(SHOW_ALL, "1")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addHandler(kept)
    try:
        recwarn.clear()
        run_cli([*predict, "--ckpt_path", str(best)])
    finally:
        logging.getLogger("lightning.pytorch.utilities.rank_zero").removeHandler(kept)
    shown_all = [str(w.message) for w in recwarn] + kept.messages
    for known in KNOWN_MESSAGES:
        assert any(re.match(known.pattern, m, re.IGNORECASE) for m in shown_all), known.pattern
