"""The datamodule's options in named groups: what ``--print_config`` shows, values refused when the command
line is parsed, and the options' old names (command lines, configs) giving the same values as the new ones."""

import io
import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, cli_error, run_cli

from eurosat_finetune.data.datamodule import EuroSATDataModule
from eurosat_finetune.data.loaders import LoaderOptions
from eurosat_finetune.data.patches.split_choice import SplitChoice
from eurosat_finetune.data.scenes.catalog import SceneOptions
from eurosat_finetune.errors import ConfigError
from eurosat_finetune.renamed_options import RENAMED, RenamedOptionWarning

OLD_DATA_NAMES = sorted(old.removeprefix("data.") for old in RENAMED if old.startswith("data."))


def printed_data(args: list[str], capsys: pytest.CaptureFixture) -> tuple[dict, list[str]]:
    """The ``data`` section ``eurosat fit <args> --print_config`` prints, and the renamed-option warnings
    it gave ("<old> is now <new>")."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        printed = yaml.safe_load(run_cli(["fit", *args, "--print_config"], capsys))
    # "data.batch_size is now data.loader.batch_size; the old name still works ..."
    renamed = [str(w.message).split(";")[0] for w in caught if issubclass(w.category, RenamedOptionWarning)]
    return printed["data"], renamed


def test_print_config_shows_the_data_groups(capsys: pytest.CaptureFixture) -> None:
    data, renamed = printed_data(["--config", str(REPO / "configs" / "demo.yaml")], capsys)
    assert len(data) <= 12 and not renamed  # the shipped config uses the new names
    groups = {name: sorted(value) for name, value in data.items() if isinstance(value, dict)}
    assert groups == {
        "download": ["enabled", "md5", "url"],
        "split": ["allow_change", "files", "seed", "test_fraction", "train_size", "val_fraction"],
        "cache": ["dir", "enabled"],
        "maps": [
            "area",
            "composite",
            "mask_clouds",
            "raster_bands",
            "raster_offset",
            "rgb_scale_max",
            "scenes",
            "stride",
            "window",
        ],
        "loader": ["batch_size", "num_workers"],
    }
    assert data["synthetic_images_per_class"] == 100 and data["loader"] == {"batch_size": 32, "num_workers": 0}


@pytest.mark.parametrize(
    ("option", "refusal"),
    [
        ("--data.loader.batch_size=0", 'Parser key "data.loader.batch_size": Not of type PositiveInt: 0 does not'),
        ("--data.split.val_fraction=1.5", 'Parser key "data.split.val_fraction": Not of type BelowOne'),
        ("--data.loader.num_workers=-1", 'Parser key "data.loader.num_workers": Not of type NonNegativeInt'),
        ("--data.maps.window=0", 'Parser key "data.maps.window": Does not validate against any of the Union'),
        ("--data.maps.raster_bands=[4,3]", 'Parser key "data.maps.raster_bands": Does not validate against any'),
        ("--data.maps.raster_bands=[B4,B3,B2]", 'Parser key "data.maps.raster_bands": Does not validate'),
        ("--data.batch_size=0", 'Parser key "data.loader.batch_size": Not of type PositiveInt'),  # the old name too
    ],
)
def test_bad_values_are_refused_when_parsed_in_one_line(
    option: str, refusal: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # a root with no data: reading it would be another error, so the refusal came first
    message = cli_error(["fit", f"--data.root={tmp_path / 'nowhere'}", option], capsys)
    assert message.startswith(f"eurosat: error: {refusal}") and message.endswith("(see eurosat fit --help)\n")
    assert message.count("\n") == 1, message


def test_fractions_that_leave_no_training_images_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fractions = ["--data.split.val_fraction=0.5", "--data.split.test_fraction=0.6"]
    message = cli_error(["fit", f"--data.root={tmp_path / 'nowhere'}", *fractions], capsys)
    assert message == (
        "eurosat: error: data.split.val_fraction=0.5 and data.split.test_fraction=0.6 leave no training images; "
        "give fractions that sum to less than 1\n"
    )
    with pytest.raises(ConfigError, match="leave no training images"):  # from Python too
        SplitChoice(val_fraction=0.3, test_fraction=0.7)


def split_lists(folder: Path) -> dict[str, str]:
    folder.mkdir()
    for split in ("train", "val", "test"):
        (folder / f"{split}.txt").write_text(f"Forest/Forest_{split}.jpg\n")
    return {split: str(folder / f"{split}.txt") for split in ("train", "val", "test")}


def test_an_old_command_line_parses_as_the_new(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Every old ``data`` option, given with a value other than its default, on the command line."""
    lists = json.dumps(split_lists(tmp_path / "lists"))
    old = {
        "download": "true",
        "url": "file:///archive/EuroSAT_RGB.zip",
        "md5": "0" * 32,
        "sample_images_per_class": "5",
        "val_fraction": "0.15",
        "test_fraction": "0.25",
        "split_seed": "3",
        "split_files": lists,
        "train_size": "0.5",
        "allow_split_change": "true",
        "decode_cache": "false",
        "cache_dir": str(tmp_path / "cache"),
        "map_scenes": "all",
        "tile_size": "32",
        "tile_stride": "16",
        "scene_bands": "[4,3,2]",
        "scene_scale_max": "3000",
        "scene_offset": "1000",
        "mask_clouds": "true",
        "batch_size": "64",
        "num_workers": "0",
    }
    assert sorted(old) == OLD_DATA_NAMES  # every renamed data option is tried
    new_args = [
        "--data.download.enabled=true",
        f"--data.download.url={old['url']}",
        f"--data.download.md5={'0' * 32}",
        "--data.synthetic_images_per_class=5",
        "--data.split.val_fraction=0.15",
        "--data.split.test_fraction=0.25",
        "--data.split.seed=3",
        f"--data.split.files={lists}",
        "--data.split.train_size=0.5",
        "--data.split.allow_change=true",
        "--data.cache.enabled=false",
        f"--data.cache.dir={tmp_path / 'cache'}",
        "--data.maps.scenes=all",
        "--data.maps.window=32",
        "--data.maps.stride=16",
        "--data.maps.raster_bands=[4,3,2]",
        "--data.maps.rgb_scale_max=3000",
        "--data.maps.raster_offset=1000",
        "--data.maps.mask_clouds=true",
        "--data.loader.batch_size=64",
        "--data.loader.num_workers=0",
    ]
    common = [f"--data.root={tmp_path}", "--data.predict_root=scenes/"]  # names kept
    old_args = [arg for name, value in old.items() for arg in (f"--data.{name}", value)]
    new, none = printed_data([*common, *new_args], capsys)
    translated, renamed = printed_data([*common, *old_args], capsys)
    assert not none and translated == new
    assert new["maps"]["raster_bands"] == [4, 3, 2] and new["split"]["files"] == json.loads(lists)
    assert new["loader"] == {"batch_size": 64, "num_workers": 0} and new["synthetic_images_per_class"] == 5
    assert sorted(renamed) == sorted(f"data.{name} is now {RENAMED[f'data.{name}']}" for name in old)


NEW_B96CE77_DATA = """
data:
  root: sample
  synthetic_images_per_class: 0
  download: {enabled: false, url: "https://zenodo.org/records/7711810/files/EuroSAT_RGB.zip?download=1", md5: null}
  bands: null
  split: {val_fraction: 0.1, test_fraction: 0.2, seed: 0, files: null, train_size: null, allow_change: false}
  cache: {enabled: true, dir: null}
  skip_unreadable: false
  predict_root: null
  maps:
    scenes: auto
    window: null
    stride: null
    raster_bands: null
    rgb_scale_max: 2750.0
    raster_offset: 0
    mask_clouds: false
    composite: none
    area: null
  augment: false
  loader: {batch_size: 16, num_workers: 0}
"""


def test_a_config_written_before_the_groups_parses_as_the_new(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The data section of a config the code wrote before the options were grouped (tests/data, at b96ce77),
    and the same values written with the new names."""
    section = yaml.safe_load((REPO / "tests" / "data" / "config-b96ce77.yaml").read_text())["data"]
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump({"data": section}))
    new = tmp_path / "new.yaml"
    new.write_text(NEW_B96CE77_DATA)
    from_new, none = printed_data(["--config", str(new)], capsys)
    from_old, renamed = printed_data(["--config", str(old)], capsys)
    assert not none and from_old == from_new == yaml.safe_load(NEW_B96CE77_DATA)["data"]
    assert sorted(renamed) == sorted(f"data.{name} is now {RENAMED[f'data.{name}']}" for name in OLD_DATA_NAMES)


def test_a_group_under_a_name_it_reuses_is_not_translated(capsys: pytest.CaptureFixture) -> None:
    """``data.download`` was a bool and is now a group: the group, given whole, is the new name."""
    as_group, renamed = printed_data(["--data.download={enabled: true, md5: null}"], capsys)
    assert as_group["download"]["enabled"] is True and not renamed
    as_bool, renamed = printed_data(["--data.download", "true"], capsys)
    assert as_bool == as_group and renamed == ["data.download is now data.download.enabled"]


def test_the_groups_are_plain_values_in_a_checkpoint(tmp_path: Path) -> None:
    """From Python the groups are given as objects; the hyperparameters a checkpoint keeps are plain values,
    which ``torch.load(weights_only=True)`` reads."""
    split = SplitChoice(val_fraction=0.2, test_fraction=0.1, seed=4, train_size=0.5)
    maps = SceneOptions(window=32, raster_bands=(4, 3, 2))
    data = EuroSATDataModule(root=tmp_path, split=split, maps=maps, loader=LoaderOptions(batch_size=8, num_workers=0))
    assert data.split_choice is split and data.maps is maps and data.loader.batch_size == 8
    buffer = io.BytesIO()
    torch.save({"datamodule_hyper_parameters": dict(data.hparams)}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)["datamodule_hyper_parameters"]
    assert saved["root"] == str(tmp_path) and saved["loader"] == {"batch_size": 8, "num_workers": 0}
    assert saved["split"] == {
        "val_fraction": 0.2,
        "test_fraction": 0.1,
        "seed": 4,
        "files": None,
        "train_size": 0.5,
        "allow_change": False,
    }
    assert saved["maps"]["raster_bands"] == [4, 3, 2] and saved["maps"]["window"] == 32
    assert data.hparams_initial == saved  # what loggers write (hparams.yaml, TensorBoard's HPARAMS)
