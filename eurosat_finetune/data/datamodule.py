"""EuroSAT RGB (or any folder of ``<class>/<image>`` files) as a LightningDataModule.

A thin layer over :mod:`.source`, :mod:`.datasets` and :mod:`.splits`. Batches cross the bus as
compact uint8 at the images' own size; training batches are augmented on the device here, and the
model resizes and normalises them on the device too."""

from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

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
from eurosat_finetune.data.loaders import drops_last_batch, each_image_once, loader
from eurosat_finetune.data.patches.datasets import (
    ImageListing,
    LabelledImages,
    ReadableImages,
    list_images,
    readable_images,
)
from eurosat_finetune.data.patches.description import describe
from eurosat_finetune.data.patches.ground_resolution import ground_resolution
from eurosat_finetune.data.patches.published import PublishedDataset, published_dataset
from eurosat_finetune.data.patches.source import EUROSAT_RGB_URL, DatasetSource
from eurosat_finetune.data.patches.split_choice import SplitChoice
from eurosat_finetune.data.patches.splits import Split, split_mismatch
from eurosat_finetune.data.predict_batches import collate_images
from eurosat_finetune.data.prediction_images import PredictionImages
from eurosat_finetune.data.samplers import EpochSeededSampler, flips_generator
from eurosat_finetune.data.scenes.catalog import MapScenes, SceneOptions, TrainedOn
from eurosat_finetune.data.scenes.predict_inputs import PredictInputs
from eurosat_finetune.data.scenes.raster_bands import SceneBands
from eurosat_finetune.errors import SplitMismatchError
from eurosat_finetune.pixels import random_dihedral
from eurosat_finetune.tools.batch_seeds import global_seed


class EuroSATDataModule(LightningDataModule):
    """EuroSAT RGB or MS (or any folder of ``<class>/<image>``) with a seeded, stratified split.

    Args:
        root: Folder holding the dataset (``EuroSAT_RGB/<Class>``, ``2750/<Class>``, ``EuroSAT_MS/<Class>``
            or ``<Class>`` folders directly); with ``download`` the archive is fetched and extracted here.
        download: Download and extract ``url`` into ``root`` when no images are found there.
        url: Where to download the dataset zip from.
        md5: Expected md5 of the downloaded zip; null skips the check (the computed md5 is logged).
        bands: The bands to train on, by name, for multispectral data (13-band GeoTIFFs as in EuroSAT MS,
            stored B01 ... B12, B8A): e.g. ``[B04, B03, B02]`` or ``[B02, B03, B04, B08]``; ``all`` or
            null: every band. RGB images are trained on as stored (null, ``all`` or ``[B04, B03, B02]``).
            With ``--ckpt_path``, null is the checkpoint's bands (other bands are refused); predicting
            ``predict_root``, they are always the checkpoint's.
        sample_images_per_class: If > 0 and ``root`` holds no images, write a synthetic dataset in
            EuroSAT layout with this many images per class instead (offline demos; not real data).
        val_fraction: Fraction of all images held out for validation.
        test_fraction: Fraction of all images held out for testing.
        split_seed: Seed of the split alone (not the global seed), so every run sees the same split.
        split_files: A published split instead of the fractions: ``{train: ..., val: ..., test: ...}``,
            each a text file with one image per line, named as ``<class>/<name>`` or ``<name>``
            (extension ignored, so TorchGeo's ``eurosat-{train,val,test}.txt`` work). Images in no
            list are left out; an image listed twice, or not in the data, is an error.
        train_size: Train on a stratified, seeded subset of the training split: a number of images
            (int) or a fraction of them (float); null uses all. Validation and test sets are unchanged.
        allow_split_change: Evaluate a checkpoint even if the data's split differs from the one it
            was trained with (by default that is refused: test images might have been trained on).
        skip_unreadable: Leave out images that cannot be decoded, with a warning listing them,
            instead of stopping with an error that lists them.
        predict_root: Folder of images and scenes (searched recursively; any file rasterio opens with a
            CRS counts, e.g. ``.jp2``, ``.vrt``), or a Sentinel-2 product, for ``predict``; null: the test
            split. A product (a ``.SAFE`` folder, or a ``.zip`` holding one; L1C or L2A) is one scene.
        map_scenes: Which ``predict_root`` files are scenes, mapped window by window (the rest are
            classified whole): ``auto``, georeferenced rasters larger than one window; ``all``, every
            image larger than one window; ``none``, none.
        tile_size: Side of the windows that slide over scenes; null is the size of the images the
            model was trained on (64 for EuroSAT).
        tile_stride: Step between windows, dividing ``tile_size``; null is ``tile_size``. Smaller
            steps overlap the windows, and each map cell averages those that cover it.
        scene_bands: The bands of raster scenes whose band descriptions do not name them: the names of
            every band in file order (e.g. ``[B02, B03, B04, B08]``), or for an RGB model the red, green and
            blue band numbers (from 1), e.g. ``[4, 3, 2]``. Null: by description; an RGB model reads an
            undescribed 3- or 4-band raster as RGB(N) and a one-band one as grey; other undescribed
            rasters are refused (a 13-band stack may be in EuroSAT's order or ESA's). Not for products.
        scene_offset: Subtracted from integer raster scene pixels: 1000 for a stack of Sentinel-2 bands
            processed with baseline 04.00 or later (January 2022 on), which add it. Products need none
            (their metadata says it). Float rasters are reflectance (0-1), multiplied by 10,000.
        scene_scale_max: For an RGB model, reflectance x 10,000 (16-bit rasters, products) is scaled
            linearly from [0, this] to the 8-bit [0, 255] and clipped; 2750 is what EuroSAT RGB was made
            with. 8-bit rasters are used as they are.
        mask_clouds: For L2A products, also treat the scene classification's cloud shadow, cloud and
            thin cirrus pixels (SCL 3, 8, 9, 10) as no data; windows less than half valid are not mapped.
        augment: Random flips and 90-degree rotations of training images, on the device (training only).
        decode_cache: Decode the images once into an array (a hidden ``.npy`` file) and
            memory-map it in later runs; false decodes every image every epoch.
        cache_dir: Folder for the decode cache; null puts it beside the images when that folder is
            writable, else in ``$XDG_CACHE_HOME/eurosat-finetune`` (``~/.cache/eurosat-finetune``).
        batch_size: Images per batch (per device). Training leaves out the incomplete last batch of an
            epoch once the epoch has 10 full ones (every step then has one shape).
        num_workers: DataLoader worker processes (they decode images when there is no cache).
    """

    def __init__(
        self,
        root: str | Path = "data",
        download: bool = False,
        url: str = EUROSAT_RGB_URL,
        md5: str | None = None,
        sample_images_per_class: int = 0,
        bands: BandChoice = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        split_files: dict[str, str] | None = None,
        train_size: int | float | None = None,
        allow_split_change: bool = False,
        skip_unreadable: bool = False,
        predict_root: str | Path | None = None,
        map_scenes: MapScenes = "auto",
        tile_size: int | None = None,
        tile_stride: int | None = None,
        scene_bands: SceneBands = None,
        scene_scale_max: float = 2750.0,
        scene_offset: int = 0,
        mask_clouds: bool = False,
        augment: bool = False,
        decode_cache: bool = True,
        cache_dir: str | Path | None = None,
        batch_size: int = 32,
        num_workers: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.source = DatasetSource(Path(root), download, url, md5, sample_images_per_class)
        self.bands = bands
        self.split_choice = SplitChoice(val_fraction, test_fraction, split_seed, split_files, train_size)
        self.allow_split_change = allow_split_change
        self.skip_unreadable = skip_unreadable
        self.predict_root = Path(predict_root) if predict_root is not None else None
        scene_bands = list(scene_bands) if scene_bands is not None else None
        self.scene_options = SceneOptions(
            map_scenes, tile_size, tile_stride, scene_bands, scene_scale_max, scene_offset, mask_clouds
        )
        self.trained = TrainedOn()  # its image size and resolution restored from a checkpoint, for predict
        self.augment = augment
        self.decode_cache = decode_cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batch_size = batch_size
        self.num_workers = num_workers

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
        options = (self.decode_cache, self.skip_unreadable, self.num_workers, self.cache_dir)
        return readable_images(listing, *options)

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
        the model's: ``bands`` as given (``eurosat predict --ckpt_path`` gives the checkpoint's)."""
        if not self._uses_labelled_data():
            return None if self.bands is None else chosen_bands(self.bands, EUROSAT_MS_BANDS, "EuroSAT MS")
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
        if saved is None or self.allow_split_change or (self.trainer is not None and self.trainer.predicting):
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
        drop_last = drops_last_batch(len(self.train_dataset), self.batch_size, processes)
        return loader(self.train_dataset, self.batch_size, self.num_workers, sampler, drop_last=drop_last)

    def val_dataloader(self) -> DataLoader:
        return loader(self.val_dataset, self.batch_size, self.num_workers, self._each_image_once(self.val_dataset))

    def test_dataloader(self) -> DataLoader:
        return loader(self.test_dataset, self.batch_size, self.num_workers, self._each_image_once(self.test_dataset))

    def predict_dataloader(self) -> DataLoader | list[DataLoader]:
        """Images classified whole, then the windows of scenes (built here, once a checkpoint has told
        the training image size and resolution). Under DDP Lightning gives the images an unpadded
        sampler itself; the windows are dealt to the processes by their dataset, which also holds each
        scene's grid for its map."""
        if self.predict_root is None:
            return loader(self.predict_dataset, self.batch_size, self.num_workers, collate_fn=collate_images)
        rank, world_size = (0, 1) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)
        trained = replace(self.trained, bands=self.band_names)
        loaders = self.predict_inputs.loaders(
            self.scene_options, trained, self.band_indices, self.batch_size, self.num_workers, rank, world_size
        )
        return loaders[0] if len(loaders) == 1 else loaders
