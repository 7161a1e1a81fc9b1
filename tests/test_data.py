"""The datamodule on real JPEG files: layouts, the seeded stratified split, downloads."""

import json
import random
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import FAST, REAL_ZIP, REAL_ZIP_MD5, TINY_VIT, cli_error, zip_dataset

from eurosat_finetune.data.datamodule import EuroSATDataModule
from eurosat_finetune.data.loaders import LoaderOptions
from eurosat_finetune.data.patches.decode_cache import DecodeCacheOptions
from eurosat_finetune.data.patches.published import EUROSAT_CLASSES
from eurosat_finetune.data.patches.source import LOCK_NAME, DownloadOptions, find_image_folder
from eurosat_finetune.data.patches.split_choice import SplitChoice
from eurosat_finetune.data.patches.splits import stratified_split, stratified_subset
from eurosat_finetune.data.patches.synthetic import write_sample_dataset
from eurosat_finetune.errors import ConfigError
from eurosat_finetune.tools.download import DownloadError, md5sum

TINY_MODEL = ["--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]
ONE_STEP = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"]  # if accepted


def datamodule(root: Path, **kwargs: Any) -> EuroSATDataModule:
    dm = EuroSATDataModule(root=root, loader=LoaderOptions(batch_size=8, num_workers=0), **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_split_is_deterministic_stratified_disjoint_and_sized() -> None:
    labels = np.repeat(np.arange(10), [300, 300, 300, 250, 250, 200, 250, 300, 250, 300])
    torch.manual_seed(123)
    np.random.seed(7)
    random.seed(1)
    first = stratified_split(labels, 0.1, 0.2, seed=0)
    torch.manual_seed(999)
    np.random.seed(99)
    second = stratified_split(labels, 0.1, 0.2, seed=0)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    train, val, test = first
    assert (len(train), len(val), len(test)) == (1890, 270, 540)
    assert len(set(train) | set(val) | set(test)) == len(labels)  # disjoint and complete
    counts = np.bincount(labels)
    for subset, fraction in ((train, 0.7), (val, 0.1), (test, 0.2)):
        per_class = np.bincount(labels[subset], minlength=10)
        assert np.all(np.abs(per_class - fraction * counts) <= 1), per_class
    other_seed = stratified_split(labels, 0.1, 0.2, seed=1)
    assert not np.array_equal(other_seed[2], test)


@pytest.mark.parametrize(("val", "test"), [(0.5, 0.5), (-0.1, 0.2), (0.1, 1.0)])
def test_split_rejects_bad_fractions(val: float, test: float) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split([0, 1] * 10, val, test, seed=0)


def refusal_of_a_70_10_20_fit(folder: Path, capsys: pytest.CaptureFixture) -> str:
    """What ``eurosat fit`` on ``folder`` split 70/10/20 says; it is refused before any image is decoded."""
    fractions = ["--data.split.val_fraction=0.1", "--data.split.test_fraction=0.2", *ONE_STEP]
    message = cli_error(["fit", *FAST, *TINY_MODEL, f"--data.root={folder}", *fractions], capsys)
    assert not list(folder.glob(".*"))  # the decode cache is a hidden file beside the images
    return message


def test_a_dataset_too_small_for_its_split_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """30 real JPEGs of 10 classes split 70/10/20: round(0.1 x 30) = 3 validation and round(0.2 x 30) = 6 test
    images cannot hold one image of each class, which a stratified split gives every split (scikit-learn
    refused with a 20-line traceback). One line, before any image is decoded (no decode cache is written)."""
    folder = write_sample_dataset(tmp_path, images_per_class=3, image_size=32)
    assert refusal_of_a_70_10_20_fit(folder, capsys) == (
        "eurosat: error: of 30 images, data.split.val_fraction=0.1 gives 3 to validation and "
        "data.split.test_fraction=0.2 gives 6 to test, fewer than the 10 classes a stratified split shares out to "
        "every split (the smallest class, AnnualCrop, has 3 images): use fewer classes, more images, or a larger "
        "data.split.val_fraction and data.split.test_fraction\n"
    )
    # the advice works: 0.34 of 30 is 10 images, one of each class, in every split
    labels = [label for label in range(10) for _ in range(3)]
    for part in stratified_split(labels, 0.34, 0.34, seed=0):
        assert sorted(np.asarray(labels)[part]) == list(range(10))


def test_a_class_too_small_for_the_split_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Nine classes of 20 images and Pasture with 2: it cannot have an image in each of train, val and test."""
    folder = write_sample_dataset(tmp_path, images_per_class=20, image_size=32)
    for image in sorted((folder / "Pasture").iterdir())[2:]:
        image.unlink()
    assert refusal_of_a_70_10_20_fit(folder, capsys) == (
        "eurosat: error: class Pasture has 2 images, fewer than the 3 splits (train, val, test) a stratified split "
        "shares every class out to: add images of Pasture, leave its folder out of data.root (fewer classes), or set "
        "data.split.val_fraction or data.split.test_fraction to 0\n"
    )
    labels = [EUROSAT_CLASSES.index(path.parent.name) for path in sorted(folder.glob("*/*.jpg"))]
    train, val, test = stratified_split(labels, 0.1, 0, seed=0)  # without a test split: two splits, two images
    assert (len(train), len(val), len(test)) == (164, 18, 0)


def test_a_class_the_test_split_leaves_too_few_of_is_named() -> None:
    """Class a has 3 images, b and c 40; test_fraction 0.6 takes round(0.6 x 83) = 50, leaving 33, of which a's
    share is 3 x 33 / 83 = 1.2, rounded down (scikit-learn gives what rounding leaves to the larger classes):
    one image of a for train and val, which a stratified split of them cannot share."""
    labels = [0] * 3 + [1] * 40 + [2] * 40
    with pytest.raises(ConfigError) as err:
        stratified_split(labels, 0.1, 0.6, seed=0, class_names=["a", "b", "c"])
    assert str(err.value) == (
        "class a has 3 images, and data.split.test_fraction=0.6 puts 2 of them in the test split, leaving too few to "
        "share out between train and val: add images of a, or use a smaller data.split.test_fraction"
    )


def test_a_training_subset_that_cannot_be_stratified_is_one_line() -> None:
    """A stratified subset keeps some images of each class and leaves some: each class needs 2 training
    images, and the subset leaves at least one image per class out."""
    names = ["a", "b", "c"]
    one_image = r"^data\.split\.train_size=20: class a has 1 training image, .* add images of a$"
    with pytest.raises(ConfigError, match=one_image):
        stratified_subset(np.arange(41), [0] + [1] * 20 + [2] * 20, 20, seed=0, class_names=names)
    labels = np.repeat(np.arange(3), 20)
    with pytest.raises(ConfigError) as err:
        stratified_subset(np.arange(60), labels, 58, seed=0, class_names=names)
    assert str(err.value) == (
        "data.split.train_size=58 gives 58 images; it must be between 3 (one per class) and 57 (leaving one per class "
        "out), or all 60 training images"
    )
    kept = stratified_subset(np.arange(60), labels, 57, seed=0, class_names=names)
    assert len(kept) == 57 and np.bincount(labels[kept]).tolist() == [19, 19, 19]
    np.testing.assert_array_equal(stratified_subset(np.arange(60), labels, 60, seed=0), np.arange(60))


@pytest.mark.parametrize("layout", ["EuroSAT_RGB", "2750", "."])
def test_published_layouts_and_plain_class_folders(sample_root: Path, tmp_path: Path, layout: str) -> None:
    shutil.copytree(sample_root / "EuroSAT_RGB", tmp_path / layout, dirs_exist_ok=True)
    folder = find_image_folder(tmp_path)
    assert folder == (tmp_path / layout if layout != "." else tmp_path)
    dm = datamodule(tmp_path)
    assert dm.class_names == list(EUROSAT_CLASSES)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (8, 3, 32, 32)
    assert labels.dtype == torch.int64


def test_user_dataset_with_own_classes(tmp_path: Path, sample_root: Path) -> None:
    for name, source in (("cloud", "SeaLake"), ("desert", "Highway"), ("ice", "Forest")):
        shutil.copytree(sample_root / "EuroSAT_RGB" / source, tmp_path / "mine" / name)
    dm = datamodule(tmp_path / "mine")
    assert dm.class_names == ["cloud", "desert", "ice"]
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (42, 6, 12)


def test_split_is_the_same_in_every_datamodule(sample_root: Path) -> None:
    a, b = datamodule(sample_root), datamodule(sample_root)
    torch.manual_seed(0)
    assert a.test_dataset.files == b.test_dataset.files
    assert a.train_dataset.files == b.train_dataset.files
    c = datamodule(sample_root, split=SplitChoice(seed=1))
    assert c.test_dataset.files != a.test_dataset.files
    labels = Counter(a.test_dataset.labels)
    assert set(labels.values()) == {4}  # 20% of 20 images in each of the 10 classes


def test_missing_data_says_where_it_looked_and_what_to_do(tmp_path: Path) -> None:
    dm = EuroSATDataModule(root=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert str(tmp_path / "nowhere" / "EuroSAT_RGB") in message
    assert "data.download.enabled=true" in message and "data.root" in message
    assert "\n" not in message


def test_download_verifies_md5_and_extracts(sample_root: Path, tmp_path: Path, serve_dir) -> None:
    archive = zip_dataset(sample_root, tmp_path / "served" / "EuroSAT_RGB.zip")
    url = serve_dir(archive.parent) + "/EuroSAT_RGB.zip"
    root = tmp_path / "data"
    dm = datamodule(root, download=DownloadOptions(True, url, md5sum(archive)))
    assert dm.class_names == list(EUROSAT_CLASSES)
    assert (root / "EuroSAT_RGB.zip").read_bytes() == archive.read_bytes()
    assert len(list((root / "EuroSAT_RGB").rglob("*.jpg"))) == 200
    assert sorted(p.name for p in root.iterdir()) == [LOCK_NAME, "EuroSAT_RGB", "EuroSAT_RGB.zip"]  # no temp files
    cache, status = sorted((root / "EuroSAT_RGB").glob(".decoded-*"))  # the decode cache
    assert cache.name.startswith(".decoded-uint8-") and status.name == cache.name.replace(".npy", ".status.npy")


def test_download_with_wrong_md5_leaves_nothing(sample_root: Path, tmp_path: Path, serve_dir) -> None:
    archive = zip_dataset(sample_root, tmp_path / "served" / "EuroSAT_RGB.zip")
    url = serve_dir(archive.parent) + "/EuroSAT_RGB.zip"
    root = tmp_path / "data"
    dm = EuroSATDataModule(root=root, download=DownloadOptions(True, url, "0" * 32))
    with pytest.raises(DownloadError) as err:
        dm.prepare_data()
    assert "0" * 32 in str(err.value) and md5sum(archive) in str(err.value)
    assert [p.name for p in root.iterdir()] == [LOCK_NAME]  # no partial download, no extracted folder


def test_download_of_a_corrupt_zip_leaves_no_half_extracted_folder(tmp_path: Path, serve_dir) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "EuroSAT_RGB.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    root = tmp_path / "data"
    dm = EuroSATDataModule(root=root, download=DownloadOptions(True, serve_dir(served) + "/EuroSAT_RGB.zip"))
    with pytest.raises(DownloadError, match="not a valid zip"):
        dm.prepare_data()
    assert [p.name for p in root.iterdir()] == [LOCK_NAME]  # the useless download is removed, nothing extracted


def test_a_corrupt_zip_the_user_placed_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "EuroSAT_RGB.zip").write_bytes(b"not a zip")
    with pytest.raises(DownloadError, match="not a valid zip"):
        EuroSATDataModule(root=root, download=DownloadOptions(enabled=True)).prepare_data()
    assert sorted(p.name for p in root.iterdir()) == [LOCK_NAME, "EuroSAT_RGB.zip"]


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.skipif(not REAL_ZIP.is_file(), reason=f"{REAL_ZIP} is absent")
def test_real_eurosat_rgb_through_the_download_path(tmp_path: Path, serve_dir) -> None:
    url = serve_dir(REAL_ZIP.parent) + "/" + REAL_ZIP.name
    # the decode cache off (tested on the sample): decoding the 27,000 images into it takes 15 s of the 20
    dm = datamodule(tmp_path, download=DownloadOptions(True, url, REAL_ZIP_MD5), cache=DecodeCacheOptions(False))
    listing = dm.listing
    assert len(listing.files) == 27_000
    assert listing.class_names == list(EUROSAT_CLASSES) == sorted(listing.class_names)
    assert Counter(listing.labels)[listing.class_names.index("Pasture")] == 2000
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (18_900, 2_700, 5_400)
    for index in range(0, 5_400, 54):  # 100 images spread over the test split (ordered by class): every class
        image, _ = dm.test_dataset[index]
        assert image.shape == (3, 64, 64) and image.dtype == torch.uint8
