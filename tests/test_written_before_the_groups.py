"""What was written before the options were grouped stays readable: the config.yaml and checkpoint a fit wrote
at commit b96ce77 (tests/data/README.md), and command lines with the old option names, test and predict as a
user runs them, each old name with a RenamedOptionWarning naming its new one."""

import csv
import warnings
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from eurosat_finetune.data.patches.published import EUROSAT_CLASSES
from eurosat_finetune.renamed_options import RenamedOptionWarning

CONFIG = REPO / "tests" / "data" / "config-b96ce77.yaml"
CHECKPOINT = REPO / "tests" / "data" / "image-classifier-b96ce77.ckpt"


def renamed(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RenamedOptionWarning)]


def test_the_config_and_checkpoint_of_b96ce77_test_and_predict(
    sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config names its data as ``root: sample`` and its logger as ``save_dir: runs``, both relative, as
    ``eurosat fit`` wrote them: run from a folder holding ``sample/`` (the same synthetic images it was
    trained on), as its user would."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sample").symlink_to(sample_root)
    # old names on the command line too, as users' scripts give them
    common = ["--config", str(CONFIG), "--ckpt_path", str(CHECKPOINT), "--data.batch_size=16", "--data.num_workers=0"]
    with warnings.catch_warnings(record=True) as caught:
        # as the command shows them: once each, though the config and the checkpoint both hold label_smoothing
        warnings.simplefilter("default")
        run_cli(["test", *common, "--trainer.enable_progress_bar=false"])
    said = renamed(caught)
    for old, new in [
        ("data.val_fraction", "data.split.val_fraction"),  # from the config
        ("data.tile_size", "data.maps.window"),
        ("model.label_smoothing", "model.loss.label_smoothing"),
        ("data.batch_size", "data.loader.batch_size"),  # from the command line
    ]:
        assert sum(message.startswith(f"{old} is now {new};") for message in said) == 1, (old, said)
    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    with open(run / "classification_report.csv") as f:
        report = {row["class"]: row for row in csv.DictReader(f)}
    # the split of the checkpoint (its fingerprint is checked): 20% of 10 x 20 images
    assert set(EUROSAT_CLASSES) < set(report) and float(report["macro avg"]["support"]) == 40
    written = (run / "config.yaml").read_text()  # the run's own config is written with today's names
    assert "val_fraction" in written and "split:" in written and "\n  val_fraction" not in written

    forest = sample_root / "EuroSAT_RGB" / "Forest"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        run_cli(["predict", *common, f"--data.predict_root={forest}", "--data.tile_size=32"])
    assert any(message.startswith("data.tile_size is now data.maps.window;") for message in renamed(caught))
    with open(tmp_path / "runs" / "lightning_logs" / "version_1" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["path"] for row in rows] == sorted(str(p) for p in forest.iterdir() if p.suffix == ".jpg")
    assert all(row["predicted_class"] in EUROSAT_CLASSES for row in rows)


# configs/demo.yaml and configs/models/tiny_vit.yaml as they were at b96ce77: the model section in a file of its own
OLD_DEMO = """
data:
  root: data/demo
  sample_images_per_class: 20
  batch_size: 16
  num_workers: 0
model: models/tiny_vit.yaml
"""
OLD_TINY_VIT = """
model_name_or_path: null
image_size: 32
model_config:
  model_type: vit
  image_size: 32
  patch_size: 8
  hidden_size: 32
  num_hidden_layers: 2
  num_attention_heads: 2
  intermediate_size: 64
"""


def test_a_section_in_a_file_of_its_own_is_translated_too(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """jsonargparse reads a section given as a file (``model: models/tiny_vit.yaml``, relative to the config) or
    given whole on the command line (``--model file``, ``--data '{...}'``) itself: those are translated too."""
    import yaml

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny_vit.yaml").write_text(OLD_TINY_VIT)
    (tmp_path / "demo.yaml").write_text(OLD_DEMO)
    expected = {"pretrained": None, "architecture": yaml.safe_load(OLD_TINY_VIT)["model_config"]}
    with pytest.warns(RenamedOptionWarning, match=r"^model\.model_config is now model\.network\.architecture;"):
        printed = yaml.safe_load(run_cli(["fit", "--config", str(tmp_path / "demo.yaml"), "--print_config"], capsys))
    assert {k: printed["model"]["network"][k] for k in expected} == expected
    assert printed["model"]["input"]["size"] == 32 and printed["data"]["loader"]["batch_size"] == 16
    assert printed["data"]["synthetic_images_per_class"] == 20

    args = ["fit", "--model", str(tmp_path / "models" / "tiny_vit.yaml"), "--data", "{batch_size: 8, root: x}"]
    with pytest.warns(RenamedOptionWarning, match=r"^data\.batch_size is now data\.loader\.batch_size;"):
        printed = yaml.safe_load(run_cli([*args, "--print_config"], capsys))
    assert {k: printed["model"]["network"][k] for k in expected} == expected
    assert printed["data"]["loader"]["batch_size"] == 8 and printed["data"]["root"] == "x"
