"""The LightningModule: any Hugging Face image classifier (ViT by default) fine-tuned on new classes.
The hub (or a local directory) is needed once, when fine-tuning starts: checkpoints rebuild their
network offline from what they hold (:class:`.self_describing.SelfDescribingCheckpoint`)."""

from pathlib import Path
from typing import IO, Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch.nn import functional as F
from torchmetrics import MeanMetric, SumMetric

from eurosat_finetune.model import backbones, losses
from eurosat_finetune.model.metrics import EpochPredictions, TestPredictions, in_test_set_order, stage_metrics
from eurosat_finetune.model.optimization import check_options, check_resumable, configure_module, factory
from eurosat_finetune.model.options import (
    InputOptions,
    LossOptions,
    ModelOptions,
    NetworkOptions,
    OptimizationOptions,
    plain,
)
from eurosat_finetune.model.pretrained_weights import WeightsSpec, weights_spec
from eurosat_finetune.model.self_describing import SelfDescribingCheckpoint, saved_hparams
from eurosat_finetune.model.starting_network import starting_network
from eurosat_finetune.pixels import dihedral_views, to_model_input
from eurosat_finetune.renamed_options import renamed_section
from eurosat_finetune.statistics.classification import ClassificationIntervals, classification_intervals

DEFAULT_OPTIMIZER = {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-4}}
"""Adam at 1e-4, as a class_path spec so ``--print_config`` shows it and its arguments."""

# each group's defaults (frozen, so one instance serves every call)
DEFAULT_NETWORK = NetworkOptions()
DEFAULT_INPUT = InputOptions()
DEFAULT_OPTIMIZATION = OptimizationOptions()
DEFAULT_LOSS = LossOptions()


class ImageClassifier(SelfDescribingCheckpoint):
    """Fine-tune a Hugging Face image classifier (ViT, DeiT, BEiT, Swin, ConvNeXt, DINOv2, timm ...)
    with a new head for ``class_names``.

    Args:
        class_names: Class names in label order; linked from ``data.class_names`` by the CLI. They
            become the model config's ``id2label``/``label2id``. Null takes them from the network's
            ``id2label`` (checkpoints carry it, so predicting needs no labelled data).
        network: The network fine-tuned: a pretrained classifier, or a new one built from an architecture.
        weights: Start from Sentinel-2 pretrained weights (a timm network) instead of
            ``network.pretrained`` (set that to null): a known name such as
            ``ResNet50_Weights.SENTINEL2_ALL_MOCO`` (TorchGeo's; see docs/backbones.md), or a spec of a
            state dict, ``{location: <URL or path>, timm_model: resnet50, bands: [...], mean: [...],
            std: [...]}``. Its normalisation is used unless ``input.mean``/``input.std`` are given.
        input: The input size and normalisation the images are brought to on the device.
        optimizer: Optimizer factory, e.g. ``--model.optimizer AdamW --model.optimizer.lr 3e-4``.
        scheduler: Optional LR scheduler factory; ReduceLROnPlateau monitors ``val_loss``.
        optimization: How the optimizer and scheduler are applied: the scheduler's steps, warmup, layer-wise
            learning-rate decay and which parameters take weight decay.
        loss: The training loss: label smoothing, class weights, MixUp and CutMix.
        tta: Test-time augmentation in test and predict: average the class probabilities of the 8
            flips and 90-degree rotations of each image (8 times the compute).
        input_bands: The bands of multispectral data (``names``) and their statistics (``mean``,
            ``std``, in stored units); linked from ``data.input_bands``, null for RGB images.
    """

    def __init__(
        self,
        class_names: list[str] | None = None,
        network: NetworkOptions = DEFAULT_NETWORK,
        weights: str | WeightsSpec | None = None,
        input: InputOptions = DEFAULT_INPUT,
        optimizer: OptimizerCallable = DEFAULT_OPTIMIZER,  # type: ignore[assignment]
        scheduler: LRSchedulerCallable | None = None,
        optimization: OptimizationOptions = DEFAULT_OPTIMIZATION,
        loss: LossOptions = DEFAULT_LOSS,
        tta: bool = False,
        input_bands: dict[str, list] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()  # as given, so hparams.yaml shows what the run was started with
        # the groups as plain dicts (a Python call gives dataclasses), as checkpoints load with weights_only
        self.save_hyperparameters(plain(dict(self.hparams)))
        # a checkpoint restored by load_from_checkpoint gives its groups as dicts
        self.options = ModelOptions.given(network, weights, input, optimization, loss)
        starting_config = self.options.network.starting_config()
        self.class_names = backbones.class_names_of(class_names, starting_config, self.options.network.pretrained)
        self.pretrained_from = self.options.starts_from
        # the signature's defaults are class_path specs (so --print_config shows them); Python callers get factories
        self.optimizer = factory(optimizer)
        self.scheduler = None if scheduler is None else factory(scheduler)
        check_options(self.optimizer, self.scheduler, self.options.optimization)
        self.configure_network()
        self.configure_losses()
        self.configure_metrics()

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | Path | IO,
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> "ImageClassifier":
        """Lightning's, for checkpoints written before the options were grouped too: their hyperparameters'
        old names are translated (one :class:`RenamedOptionWarning` each) before Lightning instantiates the
        module, which would otherwise drop them unread."""
        saved = saved_hparams(checkpoint_path)
        translated = renamed_section("model", saved)
        if translated is not saved:
            # the new groups as arguments (the old keys, unknown to the signature, are left out); the checkpoint's
            # instantiator parses the hyperparameters as saved, so the module is built from these instead
            kwargs = {**translated, "_instantiator": None, **kwargs}
        return super().load_from_checkpoint(checkpoint_path, map_location, hparams_file, strict, **kwargs)

    def configure_network(self) -> None:
        """The network, pretrained or not, with a new head labelled with the class names; the input
        size and normalisation it expects."""
        network = self.options.network
        self.input_bands = self.hparams.input_bands
        start = starting_network(
            network.pretrained,
            network.starting_config(),
            weights_spec(self.options.weights),
            self.input_bands,
            network.new_channels,
            self.class_names,
        )
        self.net = start.net
        if network.freeze_backbone:
            backbones.freeze_backbone(self.net)
        given = start.input(self.options.input)
        self.image_size = given.size
        self.image_mean = given.mean
        self.image_std = given.std
        self.interpolates = backbones.takes_interpolation(self.net)

    def configure_losses(self) -> None:
        """The training loss's label smoothing, class weights and batch mixing; validation and test
        losses stay plain cross-entropy, comparable across recipes."""
        num_classes = len(self.class_names)
        loss = self.options.loss
        self.mixer = losses.batch_mixer(loss.mixup_alpha, loss.cutmix_alpha, num_classes)
        weights = loss.class_weights
        # "balanced" needs the training split, known in setup("fit")
        given = losses.class_weights_of(weights, None, num_classes) if isinstance(weights, list) else None
        # a buffer moves to the device with the module, once; not persistent: checkpoints stay as they were
        self.register_buffer("class_weights", None if given is None else torch.tensor(given), persistent=False)

    def criterion(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels)

    def training_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy with the configured smoothing and class weights; ``targets`` are labels, or
        class probabilities after MixUp/CutMix."""
        weight = None if self.class_weights is None else self.class_weights.float()  # bf16-true casts buffers
        smoothing = self.options.loss.label_smoothing
        return F.cross_entropy(logits.float(), targets, weight=weight, label_smoothing=smoothing)

    def configure_metrics(self) -> None:
        """One collection per stage. Validation also counts its images (for its accuracy's interval); the test
        keeps each image's prediction, and from them its confusion matrix and figures' intervals, for the report."""
        num_classes = len(self.class_names)
        metrics = stage_metrics(num_classes)
        # losses averaged over images, synced by torchmetrics, so every process count gives the same value
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        self.train_metrics = metrics.clone(prefix="train_")
        self.train_predictions = EpochPredictions()  # updates train_metrics at the epoch's end, see metrics.py
        self.val_metrics = metrics.clone(prefix="val_")
        self.val_image_count = SumMetric()
        self.val_images: int | None = None
        self.test_metrics = metrics.clone(prefix="test_")
        self.test_confusion_matrix: torch.Tensor | None = None
        self.test_epoch = EpochPredictions()
        self.test_intervals: ClassificationIntervals | None = None
        self.test_predictions: TestPredictions | None = None

    def preprocess(self, images: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """Images as stored, as the model's input (see :func:`to_model_input`): a batch, or a list of images."""
        if isinstance(images, list):
            return torch.cat([self.preprocess(image[None]) for image in images])
        return to_model_input(images, self.image_size, self.image_mean, self.image_std)

    def forward(self, images: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """Logits for images as stored, preprocessed on their device as part of the model (batches cross
        the bus compact; the datamodule's own hook stays free for augmentation)."""
        return self.classify(self.preprocess(images))

    def classify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Logits for a preprocessed float batch."""
        return backbones.logits(self.net, pixel_values, self.interpolates)

    def training_inputs(self, images: torch.Tensor, labels: torch.Tensor, batch_idx: int = 0) -> losses.Inputs:
        """The model input and targets of training batch ``batch_idx``: mixed by MixUp/CutMix if configured."""
        pixel_values = self.preprocess(images)
        return losses.mixed(self.mixer, pixel_values, labels, losses.mixing_seed(self, batch_idx))

    def evaluation_logits(self, images: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """Logits for test and predict: with ``tta``, the log of the class probabilities averaged over
        the 8 dihedral views of each image."""
        if not self.hparams.tta:
            return self(images)
        views = dihedral_views(self.preprocess(images))
        probs = torch.stack([self.classify(view).float().softmax(dim=-1) for view in views]).mean(dim=0)
        return probs.log()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        pixel_values, targets = self.training_inputs(images, labels, batch_idx)
        logits = self.classify(pixel_values)
        loss = self.training_loss(logits, targets)
        # after MixUp/CutMix the accuracy counts the class with the larger share
        self.train_predictions.add(logits, targets if targets.ndim == 1 else targets.argmax(dim=-1))
        # to the loggers every log_every_n_steps; on the progress bar it would be read back every step
        self.log("train_loss", loss)
        return loss

    def on_train_epoch_end(self) -> None:
        """The epoch's training metrics, from all its predictions in one update."""
        epoch = self.train_predictions.pop()
        if epoch is not None:
            self.train_metrics.update(*epoch)
            self.log_dict(self.train_metrics, on_step=False, on_epoch=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        self.val_metrics.update(logits, labels)
        self.val_image_count.update(len(labels))
        self.val_loss.update(self.criterion(logits, labels), weight=len(labels))
        self.log("val_loss", self.val_loss, prog_bar=True)
        self.log_dict(self.val_metrics, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.val_images = int(self.val_image_count.compute())  # synced across processes
        self.val_image_count.reset()

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self.evaluation_logits(images)
        self.test_metrics.update(logits, labels)
        self.test_epoch.add(logits, labels)
        self.test_loss.update(self.criterion(logits, labels), weight=len(labels))
        self.log("test_loss", self.test_loss)
        self.log_dict(self.test_metrics)

    def on_test_epoch_end(self) -> None:
        """Every image's prediction, gathered from the processes in the test set's order, and from them the
        confusion matrix, per-class accuracy (recall) and the figures' intervals, kept for the report."""
        nothing = torch.empty(0, dtype=torch.long, device=self.device)  # a process given no image still gathers
        self.test_predictions = in_test_set_order(self, *(self.test_epoch.pop() or (nothing, nothing)))
        matrix = self.test_confusion_matrix = self.test_predictions.confusion_matrix(len(self.class_names))
        if self.trainer.is_global_zero:  # the report's and the summary's: no need on every process
            self.test_intervals = classification_intervals(matrix.numpy())
        class_acc = matrix.diag() / matrix.sum(dim=1).clamp(min=1)  # a class with no test images counts 0
        self.log_dict({f"test_acc_{name}": acc for name, acc in zip(self.class_names, class_acc, strict=True)})

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """The class probabilities of the batch's images (``probs``), with the rest of the batch, its
        metadata, passed on unchanged for the writer it is addressed to (see
        :mod:`eurosat_finetune.data.predict_batches`)."""
        images = batch["images"]
        if len(images):
            probs = self.evaluation_logits(images).float().softmax(dim=-1)  # float32 under autocast too
        else:  # a batch whose files were all unreadable
            probs = torch.empty(0, len(self.class_names), device=self.device)
        return {"probs": probs, **{key: value for key, value in batch.items() if key != "images"}}

    def configure_model(self) -> None:
        """Lightning's hook once the module is on its device (not :meth:`configure_network`, which builds
        the network): channels last in memory, as its input (see :func:`to_model_input`), and compiled
        there, in place, so state dict keys stay the same."""
        self.net.to(memory_format=torch.channels_last)
        if self.options.network.torch_compile and not getattr(self, "_compiled", False):
            self.net.compile()
            self._compiled = True

    def setup(self, stage: str) -> None:
        """TF32 matmuls on Ampere and newer GPUs: fp32 accuracy for training, several times the speed.
        Balanced class weights from the training split's counts."""
        if self.trainer.accelerator.__class__.__name__ == "CUDAAccelerator":
            torch.set_float32_matmul_precision("high")
        if stage == "fit" and self.options.loss.class_weights == "balanced":
            labels = getattr(getattr(self.trainer.datamodule, "train_dataset", None), "labels", None)
            self.class_weights = torch.tensor(losses.class_weights_of("balanced", labels, len(self.class_names)))

    def on_train_epoch_start(self) -> None:
        """A frozen backbone stays in eval mode (its dropout, if any, off), as in a linear probe."""
        if self.options.network.freeze_backbone:
            backbones.backbone_of(self.net).eval()

    def configure_optimizers(self) -> OptimizerLRScheduler:
        return configure_module(self)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        check_resumable(self, checkpoint)
