"""Training randomness is drawn per batch: each micro-batch of an accumulated step gets flips of its own,
and MixUp/CutMix draw from a generator seeded for the batch, leaving torch's global RNG as it was.
(That a killed run resumes bit for bit with them on: tests/test_reliability.py.)"""

from pathlib import Path
from typing import Any

import torch
from conftest import TINY_VIT
from lightning.pytorch import Trainer, seed_everything

from eurosat_finetune.data.datamodule import EuroSATDataModule
from eurosat_finetune.data.loaders import LoaderOptions
from eurosat_finetune.model import ImageClassifier, losses
from eurosat_finetune.model.options import NetworkOptions
from eurosat_finetune.pixels import dihedral_views


class FlipsNoted(EuroSATDataModule):
    """The datamodule as it is, noting which of the 8 dihedral views each training image was given."""

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        augmented = super().on_after_batch_transfer(batch, dataloader_idx)
        if self.trainer.training:
            views, images = dihedral_views(batch[0]), augmented[0]
            matches = [[torch.equal(view[i], image) for view in views] for i, image in enumerate(images)]
            self.flips.append([match.index(True) for match in matches])
        return augmented


def test_each_micro_batch_of_an_accumulated_step_gets_its_own_flips(sample_root: Path, tmp_path: Path) -> None:
    seed_everything(3)
    data = FlipsNoted(root=sample_root, augment=True, loader=LoaderOptions(batch_size=16, num_workers=0))
    data.flips = []
    model = ImageClassifier(
        data.class_names, network=NetworkOptions(pretrained=None, architecture={"model_type": "vit", **TINY_VIT})
    )
    trainer = Trainer(max_epochs=2, limit_train_batches=4, limit_val_batches=0, accumulate_grad_batches=2,
                      accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 4 and len(data.flips) == 8  # 2 epochs of 2 steps of 2 micro-batches
    # 16 images each, of 8 views: equal draws would be chance (8**-16); before, micro-batches shared them
    assert len({tuple(drawn) for drawn in data.flips}) == 8, data.flips


def test_mixing_is_a_function_of_the_batch_seed_alone() -> None:
    pixels = torch.rand(6, 3, 16, 16)
    labels = torch.arange(6) % 3
    mixer = losses.batch_mixer(0.2, 1.0, num_classes=3)  # RandomChoice of MixUp and CutMix: 3 draws a batch
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    first = [losses.mixed(mixer, pixels, labels, seed) for seed in range(8)]
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is left as it was
    torch.manual_seed(1)
    torch.rand(5)  # whatever else drew from the global RNG meanwhile
    again = [losses.mixed(mixer, pixels, labels, seed) for seed in range(8)]
    for (mixed_pixels, targets), (pixels_again, targets_again) in zip(first, again, strict=True):
        assert torch.equal(mixed_pixels, pixels_again) and torch.equal(targets, targets_again)
    assert len({round(float(targets[0].max()), 6) for _, targets in first}) > 1  # and differ between batches
