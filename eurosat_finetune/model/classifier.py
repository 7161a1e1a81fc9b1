"""The LightningModule: any Hugging Face image classifier (ViT by default) fine-tuned on new classes.
The hub (or a local directory) is needed once, when fine-tuning starts: checkpoints rebuild their
network offline from what they hold (:class:`.self_describing.SelfDescribingCheckpoint`)."""

from functools import partial
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable, instantiate_class
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch.nn import functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassConfusionMatrix

from eurosat_finetune.errors import ConfigError
from eurosat_finetune.model import backbones, losses, optimization
from eurosat_finetune.model.band_channels import NewChannels
from eurosat_finetune.model.metrics import EpochPredictions, stage_metrics
from eurosat_finetune.model.pretrained_weights import weights_spec
from eurosat_finetune.model.self_describing import SelfDescribingCheckpoint
from eurosat_finetune.model.starting_network import starting_network
from eurosat_finetune.pixels import dihedral_views, to_model_input

DEFAULT_MODEL = "google/vit-base-patch16-224"

DEFAULT_OPTIMIZER = {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-4}}
"""Adam at 1e-4, as a class_path spec so ``--print_config`` shows it and its arguments."""


class ImageClassifier(SelfDescribingCheckpoint):
    """Fine-tune a Hugging Face image classifier (ViT, DeiT, BEiT, Swin, ConvNeXt, DINOv2, timm ...)
    with a new head for ``class_names``.

    Args:
        class_names: Class names in label order; linked from ``data.class_names`` by the CLI. They
            become the model config's ``id2label``/``label2id``. Null takes them from
            ``model_config["id2label"]`` (checkpoints carry it, so predicting needs no labelled data).
        model_name_or_path: Hub id (e.g. ``microsoft/swin-tiny-patch4-window7-224``,
            ``timm/convnext_tiny.fb_in1k``) or local ``save_pretrained`` directory of the pretrained
            image classifier whose backbone is fine-tuned (its head is replaced). Null builds a
            randomly initialised network from ``model_config`` instead.
        model_config: Config fields: overrides for the pretrained config, or the whole architecture
            when ``model_name_or_path`` is null, with its ``model_type`` (``vit`` if none given).
        vit_config: The name ``model_config`` had before commit d5a0566 (a ViT's fields); read when
            ``model_config`` is null, so older configs and checkpoints keep working.
        image_size: Side length images are resized to on the device; null uses the model's native
            size (its image processor's). ViT-style models interpolate their position embeddings,
            convolutional ones and Swin take any size; a size the model cannot take is refused.
        image_mean: Per-channel normalisation mean; null takes it from the model's image processor.
        image_std: Per-channel normalisation std; null takes it from the model's image processor.
        freeze_backbone: Train only the new classification head (a linear probe); the backbone
            stays as loaded, runs without gradients and costs a third of the compute.
        torch_compile: Compile the network with ``torch.compile`` when training starts (faster steps
            on GPUs after a compile of a minute or so; checkpoints are unchanged).
        optimizer: Optimizer factory, e.g. ``--model.optimizer AdamW --model.optimizer.lr 3e-4``.
        scheduler: Optional LR scheduler factory; ReduceLROnPlateau monitors ``val_loss``.
        scheduler_interval: When the scheduler steps: after every ``epoch``, or after every optimizer
            ``step`` (size it in steps then, e.g. ``CosineAnnealingLR`` with ``T_max`` = total steps).
        scheduler_frequency: Step the scheduler every this many epochs or optimizer steps.
        warmup_steps: Raise the learning rate linearly over the first this many optimizer steps (from
            lr / warmup_steps to lr), then hand over to ``scheduler``, which must then step per
            ``step``.
        layer_decay: Layer-wise learning-rate decay: each backbone layer learns at this factor times
            the rate of the layer above it (the head and the last layer at the full rate; e.g. 0.75);
            null turns it off. Needs a backbone of numbered layers (transformers, ConvNeXt stages).
        decay_norms_and_biases: Apply the optimizer's weight decay to the normalisation layers'
            weights and all biases (the 1-D parameters) too; false exempts them (weight decay 0).
        label_smoothing: Training targets put this much probability mass evenly on all classes.
        class_weights: Weight of each class in the training loss (label order), or ``balanced``:
            inversely proportional to the class's count in the training split.
        mixup_alpha: MixUp of training batches on the device (torchvision v2), with this Beta
            parameter (e.g. 0.2); 0 turns it off.
        cutmix_alpha: CutMix of training batches on the device (torchvision v2), with this Beta
            parameter (e.g. 1.0); 0 turns it off. With both set, each batch gets one of the two.
        tta: Test-time augmentation in test and predict: average the class probabilities of the 8
            flips and 90-degree rotations of each image (8 times the compute).
        input_bands: The bands of multispectral data (``names``) and their statistics (``mean``,
            ``std``, in stored units); linked from ``data.input_bands``, null for RGB images.
        new_channels: How a pretrained network's first layer starts on data bands it was not trained
            on (it keeps the filters of those it was, by name): ``zeros`` or the ``mean`` of its filters.
        weights: Start from Sentinel-2 pretrained weights (a timm network) instead of
            ``model_name_or_path`` (set that to null): a known name such as
            ``ResNet50_Weights.SENTINEL2_ALL_MOCO`` (TorchGeo's; see docs/backbones.md), or the URL
            or path of a state dict (``.pth``, ``.safetensors``) described by the four options below.
            Its normalisation is used unless ``image_mean``/``image_std`` are given.
        weights_model: The timm model name of a state dict given by URL or path (e.g. ``resnet50``).
        weights_bands: Its input bands in order, by name (e.g. ``[B01, ..., B08, B8A, B09, ...]``).
        weights_mean: Its normalisation per band (same order), in stored units (reflectance x 10,000).
        weights_std: Likewise, its std per band (10000 for weights that take reflectance).
    """

    def __init__(
        self,
        class_names: list[str] | None = None,
        model_name_or_path: str | None = DEFAULT_MODEL,
        model_config: dict[str, Any] | None = None,
        vit_config: dict[str, Any] | None = None,
        image_size: int | None = None,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        freeze_backbone: bool = False,
        torch_compile: bool = False,
        optimizer: OptimizerCallable = DEFAULT_OPTIMIZER,  # type: ignore[assignment]
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        scheduler_frequency: int = 1,
        warmup_steps: int = 0,
        layer_decay: float | None = None,
        decay_norms_and_biases: bool = True,
        label_smoothing: float = 0.0,
        class_weights: list[float] | Literal["balanced"] | None = None,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        tta: bool = False,
        input_bands: dict[str, list] | None = None,
        new_channels: NewChannels = "zeros",
        weights: str | None = None,
        weights_model: str | None = None,
        weights_bands: list[str] | None = None,
        weights_mean: list[float] | None = None,
        weights_std: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()  # as given, so hparams.yaml shows what the run was started with
        self.architecture = model_config if model_config is not None else vit_config
        self.class_names = backbones.class_names_of(class_names, (self.architecture, vit_config), model_name_or_path)
        self.pretrained_from = weights or model_name_or_path
        # the signature default is a class_path spec (so --print_config shows it); Python callers get a factory
        self.optimizer = partial(instantiate_class, init=optimizer) if isinstance(optimizer, dict) else optimizer
        self.scheduler = scheduler
        if warmup_steps > 0 and scheduler is not None and scheduler_interval != "step":
            raise ConfigError(optimization.WARMUP_NEEDS_STEPS)
        self.configure_network()
        self.configure_losses()
        self.configure_metrics()

    def configure_network(self) -> None:
        """The network, pretrained or not, with a new head labelled with the class names; the input
        size and normalisation it expects."""
        hp = self.hparams
        self.input_bands = hp.input_bands
        spec = weights_spec(hp.weights, hp.weights_model, hp.weights_bands, hp.weights_mean, hp.weights_std)
        start = starting_network(
            hp.model_name_or_path, self.architecture, spec, hp.input_bands, hp.new_channels, self.class_names
        )
        self.net = start.net
        if hp.freeze_backbone:
            backbones.freeze_backbone(self.net)
        self.image_size, self.image_mean, self.image_std = start.input(hp.image_size, hp.image_mean, hp.image_std)
        self.interpolates = backbones.takes_interpolation(self.net)

    def configure_losses(self) -> None:
        """The training loss's label smoothing, class weights and batch mixing; validation and test
        losses stay plain cross-entropy, comparable across recipes."""
        num_classes = len(self.class_names)
        self.mixer = losses.batch_mixer(self.hparams.mixup_alpha, self.hparams.cutmix_alpha, num_classes)
        weights = self.hparams.class_weights
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
        smoothing = self.hparams.label_smoothing
        return F.cross_entropy(logits.float(), targets, weight=weight, label_smoothing=smoothing)

    def configure_metrics(self) -> None:
        """One collection per stage; the test also keeps a confusion matrix for the report."""
        num_classes = len(self.class_names)
        metrics = stage_metrics(num_classes)
        # losses averaged over images, synced by torchmetrics, so every process count gives the same value
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        self.train_metrics = metrics.clone(prefix="train_")
        self.train_predictions = EpochPredictions()  # updates train_metrics at the epoch's end, see metrics.py
        self.val_metrics = metrics.clone(prefix="val_")
        self.test_metrics = metrics.clone(prefix="test_")
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.test_confusion_matrix: torch.Tensor | None = None

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
        self.val_loss.update(self.criterion(logits, labels), weight=len(labels))
        self.log("val_loss", self.val_loss, prog_bar=True)
        self.log_dict(self.val_metrics, prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self.evaluation_logits(images)
        self.test_metrics.update(logits, labels)
        self.test_confusion.update(logits, labels)
        self.test_loss.update(self.criterion(logits, labels), weight=len(labels))
        self.log("test_loss", self.test_loss)
        self.log_dict(self.test_metrics)

    def on_test_epoch_end(self) -> None:
        """Per-class accuracy (recall) from the confusion matrix, which is kept for the report."""
        matrix = self.test_confusion.compute()  # synced across processes
        self.test_confusion.reset()
        self.test_confusion_matrix = matrix.cpu()
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
        if self.hparams.torch_compile and not getattr(self, "_compiled", False):
            self.net.compile()
            self._compiled = True

    def setup(self, stage: str) -> None:
        """TF32 matmuls on Ampere and newer GPUs: fp32 accuracy for training, several times the speed.
        Balanced class weights from the training split's counts."""
        if self.trainer.accelerator.__class__.__name__ == "CUDAAccelerator":
            torch.set_float32_matmul_precision("high")
        if stage == "fit" and self.hparams.class_weights == "balanced":
            labels = getattr(getattr(self.trainer.datamodule, "train_dataset", None), "labels", None)
            self.class_weights = torch.tensor(losses.class_weights_of("balanced", labels, len(self.class_names)))

    def on_train_epoch_start(self) -> None:
        """A frozen backbone stays in eval mode (its dropout, if any, off), as in a linear probe."""
        if self.hparams.freeze_backbone:
            backbones.backbone_of(self.net).eval()

    def configure_optimizers(self) -> OptimizerLRScheduler:
        return optimization.configure_module(self)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        optimization.check_resumable(self, checkpoint)
