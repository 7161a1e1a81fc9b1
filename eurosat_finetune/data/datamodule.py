"""EuroSAT RGB (or any folder of ``<class>/<image>`` files) as a LightningDataModule.

A thin layer that composes the training patches (:mod:`eurosat_finetune.data.patches`) and the scenes to
map (:mod:`eurosat_finetune.data.scenes`), handing each options group to what it configures. Batches cross the bus as
compact uint8 at the images' own size; training batches are augmented on the device here, and the
model resizes and normalises them on the device too."""

from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

from jsonargparse.typing import NonNegativeInt
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler

from eurosat_finetune.data.bands import (
    EUROSAT_MS_BANDS,
    BandChoice,
    band_statistics,
    chosen_bands,
    published_statistics,
    stored_indices,
    trained_bands,
)
from eurosat_finetune.data.loaders import LoaderOptions, drops_last_batch, each_image_once, loader
from eurosat_finetune.data.patches.datasets import (
    ImageListing,
    LabelledImages,
    ReadableImages,
    list_images,
    readable_images,
)
from eurosat_finetune.data.patches.decode_cache import DecodeCacheOptions
from eurosat_finetune.data.patches.description import describe
from eurosat_finetune.data.patches.ground_resolution import ground_resolution
from eurosat_finetune.data.patches.published import PublishedDataset, published_dataset
from eurosat_finetune.data.patches.source import DatasetSource, DownloadOptions
from eurosat_finetune.data.patches.split_choice import SplitChoice
from eurosat_finetune.data.patches.splits import Split, split_mismatch
from eurosat_finetune.data.predict_batches import collate_images
from eurosat_finetune.data.prediction_images import PredictionImages
from eurosat_finetune.data.samplers import EpochSeededSampler, flips_generator
from eurosat_finetune.data.scenes.catalog import SceneOptions, TrainedOn
from eurosat_finetune.data.scenes.predict_inputs import PredictInputs
from eurosat_finetune.data.scenes.stac_items import as_location
from eurosat_finetune.errors import SplitMismatchError
from eurosat_finetune.pixels import random_dihedral
from eurosat_finetune.tools.batch_seeds import global_seed
from eurosat_finetune.tools.plain_values import plain


class EuroSATDataModule(LightningDataModule):
    """EuroSAT RGB or MS (or any folder of ``<class>/<image>``) with a seeded, stratified split.

    Composes the training patches (:mod:`.patches`: source, decode cache, split) and the scenes to map
    (:mod:`.scenes`), each configured by a group of options passed through as it is.

    Args:
        root: Folder holding the dataset (``EuroSAT_RGB/<Class>``, ``2750/<Class>``, ``EuroSAT_MS/<Class>``
            or ``<Class>`` folders directly); with ``download.enabled`` the archive is fetched and extracted here.
        synthetic_images_per_class: If > 0 and ``root`` holds no images, write a synthetic dataset (fake
            images, not real data) in EuroSAT layout with this many images per class instead, for offline demos.
        download: Whether to download the dataset into ``root`` when it holds none, from where, with which md5.
        bands: The bands to train on, by name, for multispectral data (13-band GeoTIFFs as in EuroSAT MS,
            stored B01 ... B12, B8A): e.g. ``[B04, B03, B02]`` or ``[B02, B03, B04, B08]``; ``all`` or
            null: every band. RGB images are trained on as stored (null, ``all`` or ``[B04, B03, B02]``).
            With ``--ckpt_path``, null is the checkpoint's bands (other bands are refused); predicting
            ``predict_root``, they are always the checkpoint's.
        split: How the images are split into train, validation and test sets.
        cache: The decode cache: whether the images are decoded once into an array, and where it is kept.
        skip_unreadable: Leave out labelled images (training, validation, test) that cannot be decoded,
            with a warning listing them, instead of stopping with an error that lists them. ``predict``
            always leaves out new files it cannot read or the model cannot take (another band count), names
            each with why, and fails only when it classifies none.
        predict_root: Folder of images and scenes (searched recursively; any file rasterio opens with a
            CRS counts, e.g. ``.jp2``, ``.vrt``), or a Sentinel-2 product, for ``predict``; null: the test
            split. A product (a ``.SAFE`` folder, or a ``.zip`` holding one; L1C or L2A) is one scene. Or STAC
            items (the ``stac`` extra): an item (URL or ``.json`` file), an ItemCollection ``.json`` file, or
            a STAC API search URL, ``<root>/search?collections=...&bbox=w,s,e,n&datetime=a/b`` (``ids``,
            ``limit`` too): each item one scene, a search's bbox the area mapped.
        maps: Which ``predict_root`` files are scenes, and how they are cut into windows and read.
        augment: Random flips and 90-degree rotations of training images, on the device (training only).
        loader: Batch size and DataLoader worker processes.
    """

    def __init__(
        self,
        root: str | Path = "data",
        synthetic_images_per_class: NonNegativeInt = 0,
        download: DownloadOptions = DownloadOptions(),
        bands: BandChoice = None,
        split: SplitChoice = SplitChoice(),
        cache: DecodeCacheOptions = DecodeCacheOptions(),
        skip_unreadable: bool = False,
        predict_root: str | Path | None = None,
        maps: SceneOptions = SceneOptions(),
        augment: bool = False,
        loader: LoaderOptions = LoaderOptions(),
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # checkpoints load with weights_only=True and loggers write YAML: the groups are kept as plain values
        self.save_hyperparameters(plain(dict(self.hparams)))
        self.source = DatasetSource(Path(root), download, synthetic_images_per_class)
        self.bands = bands
        self.split_choice = split
        self.cache = cache
        self.skip_unreadable = skip_unreadable
        self.predict_root = as_location(predict_root) if predict_root is not None else None
        self.maps = maps
        self.trained = TrainedOn()  # its image size and resolution restored from a checkpoint, for predict
        self.augment = augment
        self.loader = loader

    @cached_property
    def listing(self) -> ImageListing:
        """Every image of the dataset with its label; the data is downloaded or written first if
        ``root`` holds none (once, whatever the number of processes), the cache is not built."""
        return list_images(self.source.image_folder())

    @cached_property
    def readable(self) -> ReadableImages:
        """The images that decode, checked against (and served from) the decode cache; the split options
        are checked against the file names first (:meth:`SplitChoice.check`), before any image is decoded."""
        listing = self.listing
        self.split_choice.check(listing.files, listing.labels, listing.folder, listing.class_names)
        return readable_images(listing, self.cache, self.skip_unreadable, self.loader.num_workers)

    @property
    def class_names(self) -> list[str] | None:
        """Class names in label order: the class folders, alphabetically. None when only predicting new
        images and ``root`` holds no dataset: a checkpoint knows its classes."""
        return self.listing.class_names if self._uses_labelled_data() else None

    @property
    def multispectral(self) -> bool:
        return self.listing.multispectral

    @property
    def band_names(self) -> list[str] | None:
        """The bands trained on, by name; None for RGB images, trained on as stored. Predicting new files,
        the model's: ``bands`` as given (``eurosat predict --ckpt_path`` gives the checkpoint's), else, from
        Python (``Trainer.predict(model, datamodule, ckpt_path=...)``), those of the model being run."""
        if not self._uses_labelled_data():
            bands = self.bands
            if bands is None and self.trainer is not None:
                bands = (self.trainer.lightning_module.input_bands or {}).get("names")
            return None if bands is None else chosen_bands(bands, EUROSAT_MS_BANDS, "EuroSAT MS")
        return trained_bands(self.bands, self.multispectral, self.listing.folder)

    @property
    def band_indices(self) -> list[int] | None:
        return stored_indices(self.band_names)

    @cached_property
    def published(self) -> PublishedDataset | None:
        """Which published EuroSAT the data is, by its files (see :mod:`.published`); None for other data."""
        return published_dataset(self.listing)

    @cached_property
    def input_bands(self) -> dict[str, list] | None:
        """The bands and their statistics (EuroSAT MS's published ones for EuroSAT MS, else those of the
        training split), for the model (linked to ``model.input_bands``); None for RGB."""
        names = self.band_names
        if names is None or not self._uses_labelled_data():
            return None
        published = self.published == "EuroSAT MS"
        mean, std = published_statistics(names) if published else band_statistics(self.training_images())
        return {"names": list(names), "mean": mean, "std": std}

    def training_images(self) -> LabelledImages:
        return LabelledImages(self.readable, self.split.train, self.band_indices)

    def _uses_labelled_data(self) -> bool:
        """Everything but predicting ``predict_root`` reads ``root``; that reads only the checkpoint (its
        classes, bands and image size), never downloads or decodes the labelled data."""
        return self.predict_root is None or (self.trainer is not None and not self.trainer.predicting)

    @cached_property
    def split_fingerprint(self) -> str:
        """Identifies the train/val/test split; saved in checkpoints and checked when they are restored."""
        images = self.readable
        return self.split_choice.fingerprint(images.files, images.labels, self.listing.folder, self.split)

    @cached_property
    def split(self) -> Split:
        """Train/val/test indices into the readable images."""
        images, listing = self.readable, self.listing
        return self.split_choice.split(images.files, images.labels, listing.folder, listing.class_names)

    def prepare_data(self) -> None:
        """Provide the data and build the decode cache before any process needs them (the split options are
        checked against the file names first, before any image is decoded)."""
        if self._uses_labelled_data():
            _ = self.readable

    def setup(self, stage: str) -> None:
        """Build the subsets from the seeded stratified split (and the predict set, if any)."""
        if stage == "predict" and self.predict_root is not None:
            self.predict_inputs = PredictInputs.find(self.predict_root)
            return
        images, split = self.readable, self.split
        train = self.split_choice.training_subset(split.train, images.labels, self.listing.class_names)
        bands = self.band_indices
        self.train_dataset = LabelledImages(images, train, bands)
        self.val_dataset = LabelledImages(images, split.val, bands)
        self.test_dataset = LabelledImages(images, split.test, bands)
        self.predict_dataset = PredictionImages(self.test_dataset.files, bands)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training batches on the device, still as uint8 at native size, with flips of each batch's own."""
        if self.augment and self.trainer is not None and self.trainer.training:
            images, labels = batch
            return random_dihedral(images, flips_generator(self.trainer, images.device)), labels
        return batch

    description = describe  # the data of this run, for the model card

    def state_dict(self) -> dict[str, Any]:
        state = {"split_fingerprint": self.split_fingerprint, "image_size": list(self.readable.size)}
        state["ground_resolution"] = ground_resolution(self.readable.files, self.published is not None)
        return state  # the bands are the model's hyperparameter (model.input_bands), recorded once there

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse to evaluate or resume on another split than the checkpoint was trained with."""
        self.trained = TrainedOn.from_state(state_dict)
        saved = state_dict.get("split_fingerprint")
        if saved is None or self.split_choice.allow_change or (self.trainer is not None and self.trainer.predicting):
            return
        if saved != self.split_fingerprint:
            options = self.split_choice.options()
            raise SplitMismatchError(split_mismatch(saved, self.split_fingerprint, self.source.root, options))

    def _each_image_once(self, dataset: Dataset) -> Sampler | None:
        if self.trainer is None:
            return None
        return each_image_once(dataset, self.trainer.world_size, self.trainer.global_rank)

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSeededSampler(self.train_dataset, global_seed())
        processes = 1 if self.trainer is None else self.trainer.world_size
        batch_size, num_workers = self.loader.batch_size, self.loader.num_workers
        drop_last = drops_last_batch(len(self.train_dataset), batch_size, processes)
        return loader(self.train_dataset, batch_size, num_workers, sampler, drop_last=drop_last)

    def val_dataloader(self) -> DataLoader:
        sampler = self._each_image_once(self.val_dataset)
        return loader(self.val_dataset, self.loader.batch_size, self.loader.num_workers, sampler)

    def test_dataloader(self) -> DataLoader:
        sampler = self._each_image_once(self.test_dataset)
        return loader(self.test_dataset, self.loader.batch_size, self.loader.num_workers, sampler)

    def predict_dataloader(self) -> DataLoader | list[DataLoader]:
        """Images classified whole, then the windows of scenes (built here, once a checkpoint has told
        the training image size and resolution). Under DDP Lightning gives the images an unpadded
        sampler itself; the windows are dealt to the processes by their dataset, which also holds each
        scene's grid for its map."""
        batch_size, num_workers = self.loader.batch_size, self.loader.num_workers
        if self.predict_root is None:
            return loader(self.predict_dataset, batch_size, num_workers, collate_fn=collate_images)
        rank, world_size = (0, 1) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)
        trained = replace(self.trained, bands=self.band_names)
        loaders = self.predict_inputs.loaders(
            self.maps, trained, self.band_indices, batch_size, num_workers, rank, world_size
        )
        return loaders[0] if len(loaders) == 1 else loaders
