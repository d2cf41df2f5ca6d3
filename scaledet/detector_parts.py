"""What both detectors (:mod:`scaledet.detector`'s Faster R-CNN, :mod:`scaledet.centernet2`) share around their
networks: the input transform, and the vocabulary (label space, test-time swap, class frequencies)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from scaledet.backbones import build_backbone
from scaledet.config import ModelConfig
from scaledet.errors import CheckpointError, ConfigError
from scaledet.heads import CosineClassifier
from scaledet.labels import LabelSpace, similarity_matrix
from scaledet.losses import ClassificationLoss, scaledet_classification_loss


class InputTransform(GeneralizedRCNNTransform):
    """Normalise always; resize only at test time (training images come sized by the data pipeline). At test time
    with ``presized`` set, neither: the inference loader's workers normalised, resized and padded the images with a
    copy of this transform (:mod:`scaledet.inference`); the detections stay in the resized images' pixels, and
    images that are views of one padded batch (:func:`padded_batch_of`) are taken as that batch, uncopied."""

    presized = False

    def normalize(self, image):
        if self.presized and not self.training:
            return image
        return super().normalize(image)

    def resize(self, image, target=None):
        if self.training or self.presized:
            return image, target
        return super().resize(image, target)

    def batch_images(self, images: list[Tensor], size_divisible: int = 32) -> Tensor:
        if self.presized and not self.training:
            batch = padded_batch_of(images, size_divisible)
            if batch is not None:
                return batch
        return super().batch_images(images, size_divisible)

    def postprocess(self, result, image_shapes, original_image_sizes):
        if self.presized and not self.training:  # presized: the input sizes are the resized ones (a scale of 1)
            return result
        return super().postprocess(result, image_shapes, original_image_sizes)


def padded_size(sizes: Iterable[Sequence[int]], size_divisible: int) -> list[int]:
    """The [H, W] ``batch_images`` pads images of ``sizes`` (h, w) to: their largest, rounded up to
    ``size_divisible``."""
    heights, widths = zip(*((int(h), int(w)) for h, w in sizes))
    return [math.ceil(max(side) / size_divisible) * size_divisible for side in (heights, widths)]


def padded_batch_of(images: list[Tensor], size_divisible: int) -> Tensor | None:
    """The contiguous (N, C, H, W) tensor whose ``[i, :, :h_i, :w_i]`` views ``images`` are, in order, when its H
    and W are what ``batch_images`` pads them to (their largest, rounded up to ``size_divisible``); else None.
    Read from the views' storage and strides (views made in inference mode keep no link to their base). Its
    padding is the caller's to have zeroed (the inference loader's batches, :func:`scaledet.inference.padded_batch`).
    """
    if not images or any(img.dim() != 3 for img in images):
        return None
    channels, (height, width) = int(images[0].shape[0]), padded_size((img.shape[-2:] for img in images),
                                                                     size_divisible)
    strides, first = (height * width, width, 1), images[0].storage_offset()
    storage = images[0].untyped_storage()
    for i, img in enumerate(images):
        if (img.shape[0] != channels or img.stride() != strides or img.dtype != images[0].dtype
                or img.device != images[0].device or img.untyped_storage().data_ptr() != storage.data_ptr()
                or img.storage_offset() != first + i * channels * height * width):
            return None
    if (first + len(images) * channels * height * width) * images[0].element_size() > storage.nbytes():
        return None
    return images[0].as_strided((len(images), channels, height, width), (channels * height * width, *strides), first)


def detector_backbone(cfg: ModelConfig, load_weights: bool, backbone: nn.Module | None) -> nn.Module:
    """``backbone`` when given (checked: it must say its ``out_channels``), else ``cfg.backbone`` with its FPN."""
    if backbone is None:
        return build_backbone(cfg.backbone, cfg.weights, cfg.fpn_channels, load=load_weights)
    if not isinstance(getattr(backbone, "out_channels", None), int):
        raise ConfigError(f"a backbone given to the detector needs an int attribute 'out_channels' (the channels "
                          f"of its feature maps); {type(backbone).__name__} has none")
    return backbone


def check_federated(cfg: ModelConfig) -> int | None:
    """Labels per batch of the federated loss (``model.federated_classes``), or None when it is off."""
    if not cfg.federated_loss:
        return None
    if cfg.federated_classes < 1:
        raise ConfigError(f"model.federated_classes must be >= 1, got {cfg.federated_classes}")
    return cfg.federated_classes


class VocabularyMixin:
    """The label-space side of a ScaleDet detector.

    The host is an ``nn.Module`` whose ``roi_heads`` holds the buffers ``label_embeddings``, ``similarity`` and
    ``freq_weight`` and the settings ``detections_per_img``, ``score_thresh`` and ``federated_classes``; it calls
    :meth:`_init_vocabulary` once its heads exist and :meth:`_check_frequencies` at the top of ``forward``.
    """

    roi_heads: nn.Module
    label_space: LabelSpace

    def _init_vocabulary(self, label_space: LabelSpace) -> None:
        self.label_space = label_space
        self._frequencies_for: str | None = None  # fingerprint of the label space the class frequencies count
        self.set_label_space(label_space)

    def _device(self) -> torch.device:
        return next(self.parameters()).device  # type: ignore[attr-defined]

    def set_label_space(self, label_space: LabelSpace) -> None:
        """Use ``label_space`` for training targets and inference outputs (weights untouched)."""
        if self.label_space.dim != label_space.dim:
            raise CheckpointError(
                f"label space embeddings have dimension {label_space.dim}, the head expects {self.label_space.dim}"
            )
        if "label_embeddings" in self.roi_heads._parameters:
            raise ConfigError("the label embeddings are being learned (prompt tuning): take them out with "
                              "scaledet.tuning.learned_label_space(model, label_space) before another vocabulary")
        device = self._device()
        self.label_space = label_space
        self.roi_heads.label_embeddings = label_space.embeddings.to(device)
        self.roi_heads.similarity = similarity_matrix(label_space.embeddings).to(device)

    def set_class_frequencies(self, counts: Tensor) -> None:
        """Image counts per label of the current label space (training images containing it, in label order) for
        the federated loss (``model.federated_loss``); stored as ``counts ** 0.5`` (not saved in checkpoints: the
        engine recomputes them from the training data, also on resume)."""
        n = len(self.label_space)
        if counts.shape != (n,):
            raise ConfigError(f"class frequencies must be one count per label ({n}), got shape {list(counts.shape)}")
        counts = counts.detach().to(torch.float32)
        if not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
            raise ConfigError("class frequencies must be finite, non-negative image counts")
        self.roi_heads.freq_weight = counts.sqrt().to(self._device())
        self._frequencies_for = self.label_space.fingerprint

    @contextmanager
    def scoring(self, label_space: LabelSpace, detections_per_image: int | None = None,
                score_thresh: float | None = None) -> Iterator[None]:
        """Within the block: ``label_space`` as the vocabulary, and (when given) at most ``detections_per_image``
        detections per image of score above ``score_thresh``; the previous vocabulary and settings afterwards."""
        heads = self.roi_heads
        saved = self.label_space, heads.detections_per_img, heads.score_thresh
        self.set_label_space(label_space)
        if detections_per_image is not None:
            heads.detections_per_img = int(detections_per_image)
        if score_thresh is not None:
            heads.score_thresh = float(score_thresh)
        try:
            yield
        finally:
            self.set_label_space(saved[0])
            heads.detections_per_img, heads.score_thresh = saved[1], saved[2]

    def _check_frequencies(self, training_with_targets: bool) -> None:
        if not training_with_targets or self.roi_heads.federated_classes is None:
            return
        if self._frequencies_for is None:
            raise no_frequencies("the detector has no class frequencies")
        if self._frequencies_for != self.label_space.fingerprint:
            raise no_frequencies("its class frequencies were counted for another label space than the "
                                 f"current one ({self.label_space.fingerprint})")

    def label_state(self) -> dict:
        """The current label space as a checkpoint-ready dict (with its fingerprint)."""
        return {**self.label_space.to_state(), "fingerprint": self.label_space.fingerprint}


def no_frequencies(problem: str) -> ConfigError:
    """The error of a federated loss without (matching) class frequencies."""
    return ConfigError(
        f"model.federated_loss is on but {problem}: the federated loss draws its negative classes by image counts; "
        "call set_class_frequencies(counts) on the detector for the training label space (scaledet.engine.train "
        "does) or set model.federated_loss=false"
    )


def region_classification_loss(cos: Tensor, labels: Tensor, classifier: CosineClassifier, heads: nn.Module
                               ) -> ClassificationLoss:
    """Eq. 8 over one RoI stage's regions (``labels``: label-space indices, negative = background) scored by
    ``classifier``, with the ``heads``' ``soft_weight`` and ``similarity`` buffer and, when their
    ``federated_classes`` is set, the federated hard label loss over their ``freq_weight``."""
    similarity = heads.similarity if heads.soft_weight > 0 else None
    federated: dict = {}
    if heads.federated_classes is not None:
        if heads.freq_weight.numel() != cos.shape[1]:
            raise no_frequencies(f"the RoI heads have {heads.freq_weight.numel()} class frequencies for "
                                 f"{cos.shape[1]} labels")
        federated = {"freq_weight": heads.freq_weight, "fed_num_classes": heads.federated_classes}
    return scaledet_classification_loss(cos.float(), labels, similarity, tau=classifier.tau,
                                        soft_weight=heads.soft_weight, bias=classifier.bias, **federated)
