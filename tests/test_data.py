"""The datamodule on real JPEG files: layouts, the seeded stratified split, downloads."""

import random
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import REAL_ZIP, REAL_ZIP_MD5, zip_dataset

from eurosat_finetune.data.datamodule import EuroSATDataModule
from eurosat_finetune.data.loaders import LoaderOptions
from eurosat_finetune.data.patches.source import LOCK_NAME, DownloadOptions, find_image_folder
from eurosat_finetune.data.patches.split_choice import SplitChoice
from eurosat_finetune.data.patches.splits import stratified_split
from eurosat_finetune.data.patches.synthetic import EUROSAT_CLASSES
from eurosat_finetune.tools.download import DownloadError, md5sum


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
    dm = datamodule(tmp_path, download=DownloadOptions(True, url, REAL_ZIP_MD5))
    listing = dm.listing
    assert len(listing.files) == 27_000
    assert listing.class_names == list(EUROSAT_CLASSES) == sorted(listing.class_names)
    assert Counter(listing.labels)[listing.class_names.index("Pasture")] == 2000
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (18_900, 2_700, 5_400)
    image, _ = dm.test_dataset[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.uint8
