"""Published splits (``data.split.files``): lists of names, in the split fingerprint, with clear errors."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from conftest import FAST, TINY_VIT, cli_error, read_metrics, run_cli, version_dir

from eurosat_finetune.data.patches.datasets import list_images
from eurosat_finetune.data.patches.splits import listed_split
from eurosat_finetune.errors import ConfigError

TINY_MODEL = ["--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]


def write_lists(folder: Path, data: Path, sizes: dict[str, int], style: str = "torchgeo") -> dict[str, Path]:
    """Lists that take the first images of each class for train, the next for val, then test; named as
    TorchGeo names them (``Forest_3.tif``, the multispectral files) or as ``<class>/<file>``."""
    folder.mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {split: [] for split in sizes}
    for class_folder in sorted(p for p in data.iterdir() if p.is_dir()):
        images = sorted(class_folder.glob("*.jpg"))
        start = 0
        for split, size in sizes.items():
            for image in images[start : start + size]:
                lists[split].append(f"{image.stem}.tif" if style == "torchgeo" else f"{class_folder.name}/{image.name}")
            start += size
    paths = {}
    for split, names in lists.items():
        paths[split] = folder / f"eurosat-{split}.txt"
        paths[split].write_text("\n".join(names) + "\n")
    return paths


def split_option(paths: dict[str, Path]) -> str:
    return "--data.split.files=" + json.dumps({split: str(path) for split, path in paths.items()})


def test_listed_split_matches_names_and_class_paths(sample_root: Path, tmp_path: Path) -> None:
    listing = list_images(sample_root / "EuroSAT_RGB")
    sizes = {"train": 12, "val": 4, "test": 4}
    for style in ("torchgeo", "paths"):
        paths = write_lists(tmp_path / style, listing.folder, sizes, style)
        lists = {split: path.read_text().split() for split, path in paths.items()}
        split = listed_split(listing.files, listing.folder, lists)
        for name in ("train", "val", "test"):
            chosen = [listing.files[i].stem for i in getattr(split, name)]
            assert sorted(chosen) == sorted(Path(entry).stem for entry in lists[name])
        assert len(split.train) == 120 and len(split.val) == len(split.test) == 40


def test_one_image_under_two_names_is_refused(sample_root: Path) -> None:
    """``Forest_1`` in train and ``Forest/Forest_1.jpg`` in test are one image: a test image trained on."""
    listing = list_images(sample_root / "EuroSAT_RGB")
    image = listing.files[0].relative_to(listing.folder)  # e.g. AnnualCrop/AnnualCrop_0.jpg
    others = [f.relative_to(listing.folder).as_posix() for f in listing.files[1:3]]
    lists = {"train": [f"{image.stem}.tif", others[0]], "val": [others[1]], "test": [image.as_posix()]}
    with pytest.raises(ConfigError) as refusal:
        listed_split(listing.files, listing.folder, lists)
    assert str(refusal.value) == (
        f"data.split.files: {image.with_suffix('').as_posix()} (as {image.stem}.tif and {image.as_posix()}) "
        "is listed in both train and test; each image may be listed once"
    )


@pytest.mark.slow  # an end-to-end run: the full suite
def test_fit_and_test_on_listed_splits(sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = sample_root / "EuroSAT_RGB"
    paths = write_lists(tmp_path / "lists", data, {"train": 12, "val": 3, "test": 5})
    common = [*FAST, *TINY_MODEL, f"--data.root={sample_root}", "--trainer.logger=CSVLogger"]
    fit_logs = f"--trainer.logger.save_dir={tmp_path}/fit"
    run_cli(["fit", *common, split_option(paths), "--trainer.max_epochs=1", fit_logs])
    best = version_dir(tmp_path / "fit", 0) / "checkpoints" / "best.ckpt"

    logs = f"--trainer.logger.save_dir={tmp_path}/predict"
    run_cli(["predict", *common, split_option(paths), f"--ckpt_path={best}", logs])
    with open(version_dir(tmp_path / "predict", 0) / "predictions.csv") as f:
        predicted = sorted(Path(row["path"]).stem for row in csv.DictReader(f))
    assert predicted == sorted(Path(name).stem for name in paths["test"].read_text().split())  # the listed test set

    run_cli(["test", *common, split_option(paths), f"--ckpt_path={best}", f"--trainer.logger.save_dir={tmp_path}/test"])
    assert "test_acc" in read_metrics(version_dir(tmp_path / "test", 0))

    # another list, or the fractions, is another split: the fingerprint refuses the checkpoint
    other = write_lists(tmp_path / "other", data, {"train": 11, "val": 3, "test": 6})
    for split_args in ([split_option(other)], []):
        logs = f"--trainer.logger.save_dir={tmp_path}/refused"
        message = cli_error(["test", *common, *split_args, f"--ckpt_path={best}", logs], capsys).splitlines()[-1]
        assert message.startswith("eurosat: error: the checkpoint was trained on split ")


@pytest.mark.slow  # an end-to-end run: the full suite
def test_bad_lists_are_refused_before_any_image_is_decoded(
    sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "data" / "EuroSAT_RGB"
    shutil.copytree(sample_root / "EuroSAT_RGB", data, ignore=shutil.ignore_patterns(".*"))
    paths = write_lists(tmp_path / "lists", data, {"train": 12, "val": 3, "test": 5})
    common = ["fit", *FAST, *TINY_MODEL, f"--data.root={data.parent}", f"--trainer.default_root_dir={tmp_path}/runs"]

    def refused(paths: dict[str, Path]) -> str:
        return cli_error([*common, split_option(paths)], capsys).strip()

    test_list = paths["test"].read_text()
    paths["test"].write_text(test_list + "Forest_999.tif\n")
    assert refused(paths) == (
        f"eurosat: error: data.split.files.test: Forest_999.tif is not among the 200 readable images of {data}; "
        "fix the list or the data.root"
    )
    paths["test"].write_text(test_list + paths["train"].read_text().split()[0] + "\n")
    first = paths["train"].read_text().split()[0]
    assert refused(paths) == (
        f"eurosat: error: data.split.files: {first} is listed in both train and test; each image may be listed once"
    )
    paths["test"].write_text(test_list + test_list.split()[0] + "\n")
    assert refused(paths) == (
        f"eurosat: error: data.split.files: {test_list.split()[0]} is listed twice in test; "
        "each image may be listed once"
    )
    missing = {**paths, "val": tmp_path / "nowhere.txt"}
    assert refused(missing) == (
        f"eurosat: error: data.split.files.val: no such file {tmp_path / 'nowhere.txt'}; "
        "give a text file of image names"
    )
    assert refused({"train": paths["train"], "test": paths["test"]}).startswith(
        "eurosat: error: data.split.files has keys ['test', 'train']; give exactly train, val and test"
    )
    assert not list(data.glob(".*"))  # no decode cache was built
    assert not (tmp_path / "runs").exists()
