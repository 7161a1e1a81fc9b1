"""The fast data path: decode cache, device-side preprocessing and augmentation, on real JPEGs."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST, TINY_VIT, cli_error
from lightning.pytorch import Trainer
from PIL import Image
from torchvision import datasets
from torchvision.transforms import v2

from eurosat_finetune.data.datamodule import EuroSATDataModule
from eurosat_finetune.data.images import read_image
from eurosat_finetune.data.loaders import LoaderOptions
from eurosat_finetune.data.patches import decode_cache as cache_module
from eurosat_finetune.data.patches.datasets import list_images
from eurosat_finetune.data.patches.decode_cache import (
    CACHE_PREFIX,
    DecodeCacheOptions,
    build_cache,
    cache_name,
    load_cache,
    status_path,
)
from eurosat_finetune.model import ImageClassifier
from eurosat_finetune.model.options import InputOptions, NetworkOptions
from eurosat_finetune.pixels import random_dihedral

NO_WORKERS = LoaderOptions(num_workers=0)


@pytest.fixture
def dataset(sample_root: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the sample dataset."""
    return shutil.copytree(sample_root / "EuroSAT_RGB", tmp_path / "EuroSAT_RGB", ignore=shutil.ignore_patterns(".*"))


def test_cache_holds_exactly_the_decoded_images(dataset: Path) -> None:
    files = list_images(dataset).files
    cache, status = load_cache(files, dataset)
    assert (status == 0).all()
    assert cache.shape == (200, 3, 32, 32) and cache.dtype == np.uint8
    assert isinstance(cache, np.memmap)  # memory-mapped, not loaded
    for i in (0, 57, 199):
        np.testing.assert_array_equal(cache[i], read_image(files[i]).numpy())


def test_device_path_matches_the_imagefolder_pipeline(dataset: Path) -> None:
    """Cached uint8 batch -> on-device resize + normalise == ImageFolder + PIL Resize + ToTensor + Normalize."""
    imagefolder = datasets.ImageFolder(
        str(dataset),
        transform=v2.Compose(
            [v2.Resize(224), v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)]
        ),
    )
    dm = EuroSATDataModule(root=dataset.parent, loader=LoaderOptions(batch_size=200, num_workers=0))
    dm.prepare_data()
    dm.setup("fit")
    model = ImageClassifier(
        dm.class_names, NetworkOptions(pretrained=None, architecture=TINY_VIT), input=InputOptions(size=224)
    )
    by_path = {Path(p): i for i, (p, _) in enumerate(imagefolder.samples)}
    images, labels = next(iter(dm.val_dataloader()))
    ours = model.preprocess(images)
    for row, path in enumerate(dm.val_dataset.files):
        expected, label = imagefolder[by_path[path]]
        assert label == labels[row]
        torch.testing.assert_close(ours[row], expected, rtol=0, atol=2.01 / 255)  # one grey level


def test_augmentation_only_while_training(dataset: Path) -> None:
    dm = EuroSATDataModule(root=dataset.parent, loader=NO_WORKERS, augment=True)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    dm.trainer = trainer
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(64)
    for stage in ("validating", "testing", "predicting", "sanity_checking"):
        setattr(trainer, stage, True)
        out, out_labels = dm.on_after_batch_transfer((images, labels), 0)
        assert torch.equal(out, images) and torch.equal(out_labels, labels), stage
    trainer.training = True
    out, out_labels = dm.on_after_batch_transfer((images, labels), 0)
    assert torch.equal(out_labels, labels)
    symmetries = [torch.rot90(x, k, dims=(-2, -1)) for x in (images, images.flip(-1)) for k in range(4)]
    which = [next(s for s in range(8) if torch.equal(out[i], symmetries[s][i])) for i in range(64)]
    assert len(set(which)) >= 6  # drawn per image, not once per batch
    assert not EuroSATDataModule(root=dataset.parent, loader=NO_WORKERS).augment  # off unless asked for


def test_random_dihedral_keeps_non_square_images_in_shape() -> None:
    images = torch.randint(0, 256, (16, 3, 4, 6), dtype=torch.uint8)
    assert random_dihedral(images).shape == images.shape


def test_cache_is_rebuilt_when_the_dataset_changes(dataset: Path) -> None:
    files = list_images(dataset).files
    first = dataset / cache_name(files, dataset)
    load_cache(files, dataset)
    changed = files[3]
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(changed)
    second = dataset / cache_name(files, dataset)
    assert second != first
    cache, _ = load_cache(files, dataset)
    assert cache[3].max() == 0
    assert sorted(dataset.glob(f"{CACHE_PREFIX}*")) == [second, status_path(second)]  # the stale cache is gone

    (dataset / "Forest" / "Forest_new.png").write_bytes((dataset / "Forest" / "Forest_1.jpg").read_bytes())
    more = list_images(dataset).files
    assert len(load_cache(more, dataset)[0]) == 201


def test_cache_is_never_read_half_written(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = list_images(dataset).files
    path = dataset / cache_name(files, dataset)
    # a killed build leaves at most its temporary file, which is never read and is overwritten next time
    path.with_name(f"{path.name}.tmp").write_bytes(b"\x93NUMPY half written")
    # a build that dies half way (here: the 150th decode raises) leaves nothing under the final name
    real_read, calls = cache_module.read_image_at, []

    def dies_half_way(file: Path, size: tuple[int, int]) -> tuple[torch.Tensor, bool]:
        calls.append(file)
        if len(calls) == 150:
            raise RuntimeError("killed")
        return real_read(file, size)

    monkeypatch.setattr(cache_module, "read_image_at", dies_half_way)
    with pytest.raises(RuntimeError, match="killed"):
        build_cache(files, path)
    assert not path.exists() and not status_path(path).exists()
    assert list(dataset.glob(f"{CACHE_PREFIX}*")) == []
    monkeypatch.undo()
    cache, _ = load_cache(files, dataset)
    np.testing.assert_array_equal(cache[150], read_image(files[150]).numpy())


def test_a_cache_dir_where_no_file_can_be_created_is_refused(
    sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Tried, not read from permission bits: here the folder would sit under a file (as on a read-only
    mount or in another user's folder, creating a file there fails); refused before any image is decoded."""
    (tmp_path / "a-file").write_text("")
    cache_dir = tmp_path / "a-file" / "cache"
    args = ["fit", *FAST, f"--model.network.architecture={json.dumps(TINY_VIT)}", "--model.network.pretrained=null"]
    message = cli_error([*args, f"--data.root={sample_root}", f"--data.cache.dir={cache_dir}"], capsys)
    assert message.splitlines()[-1] == (
        f"eurosat: error: cannot write the decode cache to data.cache.dir='{cache_dir}'; give a writable "
        "folder (or leave it unset), or set data.cache.enabled=false to decode images every epoch"
    )


@pytest.mark.parametrize("decode_cache", [True, False])
def test_corrupt_images_are_named_or_skipped(
    dataset: Path, decode_cache: bool, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    broken = [dataset / "Forest" / "Forest_3.jpg", dataset / "SeaLake" / "SeaLake_9.jpg"]
    broken[0].write_bytes(broken[0].read_bytes()[:300])  # truncated
    broken[1].write_bytes(b"not a jpeg at all")
    options = [f"--data.root={dataset.parent}", f"--data.cache.enabled={str(decode_cache).lower()}"]
    options += ["--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}", *FAST]
    options += ["--trainer.max_epochs=1", "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path}"]
    message = cli_error(["fit", *options], capsys)
    assert message.count("\n") == 1
    if decode_cache:  # found while decoding into the cache, before any training: all of them
        assert "2 image(s) cannot be read" in message and all(str(p) in message for p in broken)
    else:  # found when first read
        assert "cannot read" in message and any(str(p) in message for p in broken)
    assert "data.skip_unreadable=true" in message

    dm = EuroSATDataModule(
        root=dataset.parent, loader=NO_WORKERS, cache=DecodeCacheOptions(enabled=decode_cache), skip_unreadable=True
    )
    with pytest.warns(UserWarning, match=r"leaving out 2 unreadable image\(s\)") as record:
        dm.prepare_data()
        dm.setup("fit")
    assert all(str(p) in str(record[0].message) for p in broken)
    kept = dm.train_dataset.files + dm.val_dataset.files + dm.test_dataset.files
    assert len(kept) == 198 and not set(broken) & set(kept)
    assert len(next(iter(torch.utils.data.DataLoader(dm.train_dataset, batch_size=198)))[0]) == len(dm.train_dataset)


@pytest.mark.parametrize("decode_cache", [True, False])
@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "size"])
def test_odd_images_are_converted_and_resized(dataset: Path, mode: str, decode_cache: bool) -> None:
    target = dataset / "River" / "River_odd.png"
    rgb = Image.open(dataset / "River" / "River_1.jpg")
    if mode == "I;16":
        Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257).save(target)
    elif mode == "size":
        rgb.resize((50, 70)).save(target)
    else:
        rgb.convert(mode).save(target)
    dm = EuroSATDataModule(
        root=dataset.parent, loader=LoaderOptions(batch_size=300, num_workers=0), cache=DecodeCacheOptions(decode_cache)
    )
    dm.prepare_data()
    dm.setup("fit")
    subsets = (dm.train_dataset, dm.val_dataset, dm.test_dataset)
    assert sum(len(s) for s in subsets) == 201
    for subset in subsets:  # every image batches with the others
        images, _ = next(iter(torch.utils.data.DataLoader(subset, batch_size=len(subset))))
        assert images.shape[1:] == (3, 32, 32)
    subset = next(s for s in subsets if target in s.files)
    image = subset[subset.files.index(target)][0].numpy()
    if mode in ("L", "I;16"):
        np.testing.assert_allclose(image[0], np.asarray(rgb.convert("L")), atol=1)
        np.testing.assert_array_equal(image[0], image[2])


@pytest.mark.slow  # DataLoader worker processes
def test_dataloader_workers(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """num_workers=2, as configs/fit.yaml uses workers: the cache built by workers equals the files, a fit
    trains from the memory-mapped cache in workers, predict runs in workers, and an unreadable image met
    inside a worker (no cache) is still one line naming it."""
    from conftest import run_cli

    workers = [*FAST, "--data.loader.num_workers=2", "--trainer.max_epochs=1", "--trainer.logger=CSVLogger"]
    workers += ["--model.network.pretrained=null", f"--model.network.architecture={json.dumps(TINY_VIT)}"]
    run_cli(["fit", *workers, f"--data.root={dataset.parent}", f"--trainer.logger.save_dir={tmp_path / 'logs'}"])
    files = list_images(dataset).files
    cache, status = load_cache(files, dataset)
    assert (status == 0).all()
    for i in (0, 101, 199):
        np.testing.assert_array_equal(cache[i], read_image(files[i]).numpy())
    run_dir = tmp_path / "logs" / "lightning_logs" / "version_0"
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()

    output = tmp_path / "predictions.csv"
    best = ["--ckpt_path", str(run_dir / "checkpoints" / "best.ckpt")]
    predict = ["predict", *workers, f"--data.root={dataset.parent}", f"--trainer.logger.save_dir={tmp_path / 'logs'}"]
    run_cli([*predict, f"--predictions.output={output}", *best])
    assert len(output.read_text().splitlines()) == 1 + 40  # header + the 20% test split, each image once

    broken = dataset / "Forest" / "Forest_7.jpg"
    broken.write_bytes(b"not a jpeg")
    no_cache = [*workers, f"--data.root={dataset.parent}", "--data.cache.enabled=false"]
    message = cli_error(["fit", *no_cache, f"--trainer.logger.save_dir={tmp_path / 'logs2'}"], capsys)
    assert message.startswith(f"eurosat: error: cannot read {broken}") and message.count("\n") == 1, message
    assert "data.skip_unreadable=true" in message
