"""The ScaleDet detector: torchvision Faster R-CNN + FPN whose box classifier is the cosine head.

This is the only module that imports ``torchvision.models.detection``.

Box regression is **class-agnostic** (one box per region): the vocabulary changes at test time, so
per-class regressors trained for the training labels would mean nothing for a new dataset's labels, and
with n = 2249 labels a per-class regressor would be a 1024 x 8996 layer for no gain (Detic and CenterNet2
regress class-agnostically for the same reason).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign, batched_nms, clip_boxes_to_image, remove_small_boxes

from scaledet.backbones import build_backbone, input_normalization
from scaledet.config import ModelConfig
from scaledet.errors import CheckpointError, ConfigError
from scaledet.heads import CosineClassifier
from scaledet.labels import LabelSpace, similarity_matrix
from scaledet.losses import scaledet_classification_loss

log = logging.getLogger(__name__)

_MAX_CANDIDATES = 1000  # (region, label) pairs kept per image before NMS


def _anchors_and_pool() -> dict:
    """Anchors and RoI pooling for our FPNs: levels '0'-'2' (strides 8, 16, 32) + 'pool' (stride 64).

    Three scales per level (RetinaNet's 2^0, 2^(1/3), 2^(2/3)) so that 32-512 px objects all have anchors.
    """
    return {
        "rpn_anchor_generator": AnchorGenerator(
            tuple(tuple(round(s * 2 ** (k / 3)) for k in range(3)) for s in (32, 64, 128, 256)),
            ((0.5, 1.0, 2.0),) * 4,
        ),
        "box_roi_pool": MultiScaleRoIAlign(["0", "1", "2"], output_size=7, sampling_ratio=2),
    }


class ScaleDetPredictor(nn.Module):
    """Cosine classifier over label embeddings + class-agnostic box regression (4 deltas per region)."""

    def __init__(self, in_features: int, embed_dim: int, tau: float, prior_prob: float):
        super().__init__()
        self.classifier = CosineClassifier(in_features, embed_dim, tau=tau, prior_prob=prior_prob)
        self.bbox_pred = nn.Linear(in_features, 4)

    def forward(self, features: Tensor, label_embeddings: Tensor) -> tuple[Tensor, Tensor]:
        """Cosines ``[R, n]`` and box deltas ``[R, 4]``."""
        features = features.flatten(start_dim=1)
        return self.classifier(features, label_embeddings), self.bbox_pred(features)


class ScaleDetRoIHeads(RoIHeads):
    """RoI heads trained with the ScaleDet classification loss (eq. 8) and scoring with sigmoids.

    Target labels are unified-label-space indices **plus one** inside torchvision's matcher (0 is its
    background); they are shifted back before the loss. ``federated_classes`` (None = off) switches on the
    federated hard label loss over that many labels per batch, drawn by the ``freq_weight`` buffer
    (``image_count ** 0.5`` per label, set by :meth:`ScaleDetDetector.set_class_frequencies`).
    """

    def __init__(self, *args, soft_weight: float = 10.0, federated_classes: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.soft_weight = float(soft_weight)
        self.federated_classes = federated_classes
        self.register_buffer("label_embeddings", torch.zeros(0, 0), persistent=False)
        self.register_buffer("similarity", torch.zeros(0, 0), persistent=False)
        self.register_buffer("freq_weight", torch.zeros(0), persistent=False)

    def forward(self, features, proposals, image_shapes, targets=None):
        if self.training:
            proposals, _, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        cos, box_regression = self.box_predictor(box_features, self.label_embeddings)
        if self.training:
            return [], self._losses(cos, box_regression, torch.cat(labels), torch.cat(regression_targets))
        return self._detections(cos.float(), box_regression.float(), proposals, image_shapes), {}

    def _losses(self, cos: Tensor, deltas: Tensor, labels: Tensor, regression_targets: Tensor) -> dict[str, Tensor]:
        classifier = self.box_predictor.classifier
        similarity = self.similarity if self.soft_weight > 0 else None
        federated: dict = {}
        if self.federated_classes is not None:
            if self.freq_weight.numel() != cos.shape[1]:
                raise _no_frequencies(f"the RoI heads have {self.freq_weight.numel()} class frequencies for "
                                      f"{cos.shape[1]} labels")
            federated = {"freq_weight": self.freq_weight, "fed_num_classes": self.federated_classes}
        cls = scaledet_classification_loss(
            cos.float(), labels - 1, similarity, tau=classifier.tau, soft_weight=self.soft_weight,
            bias=classifier.bias, **federated,
        )
        positive = torch.where(labels > 0)[0]
        box_loss = F.smooth_l1_loss(
            deltas[positive].float(), regression_targets[positive], beta=1 / 9, reduction="sum"
        ) / max(labels.numel(), 1)
        return {"loss_classifier": cls.total, "loss_box_reg": box_loss,
                "parts/hard": cls.hard.detach(), "parts/soft": cls.soft.detach()}

    def _detections(self, cos, deltas, proposals, image_shapes) -> list[dict[str, Tensor]]:
        scores = self.box_predictor.classifier.scores(cos)
        boxes = self.box_coder.decode(deltas, proposals).reshape(-1, 4)
        results = []
        for img_scores, img_boxes, shape in zip(scores.split([len(p) for p in proposals]),
                                                boxes.split([len(p) for p in proposals]), image_shapes):
            results.append(self._one_image(img_scores, clip_boxes_to_image(img_boxes, shape)))
        return results

    def _one_image(self, scores: Tensor, boxes: Tensor) -> dict[str, Tensor]:
        """Per (region, label) pairs above the threshold, top candidates, per-label NMS, top-k detections."""
        flat = scores.flatten()
        keep = torch.where(flat > self.score_thresh)[0]
        if keep.numel() > _MAX_CANDIDATES:
            keep = keep[flat[keep].topk(_MAX_CANDIDATES).indices]
        n = scores.shape[1]
        regions, labels, kept_scores = keep // n, keep % n, flat[keep]
        kept_boxes = boxes[regions]
        large = remove_small_boxes(kept_boxes, 1e-2)
        kept_boxes, labels, kept_scores = kept_boxes[large], labels[large], kept_scores[large]
        survivors = batched_nms(kept_boxes, kept_scores, labels, self.nms_thresh)[: self.detections_per_img]
        return {"boxes": kept_boxes[survivors], "scores": kept_scores[survivors], "labels": labels[survivors]}


class _Transform(GeneralizedRCNNTransform):
    """Normalise always; resize only at test time (training images come sized by the data pipeline)."""

    def resize(self, image, target=None):
        if self.training:
            return image, target
        return super().resize(image, target)


class ScaleDetDetector(FasterRCNN):
    """Faster R-CNN + FPN with the ScaleDet RoI heads; ``set_label_space`` swaps the vocabulary.

    Training targets: ``{"boxes": [K, 4] xyxy, "labels": [K] indices into the current label space}``.
    Inference outputs ``labels`` as indices into the current label space.
    """

    def __init__(self, cfg: ModelConfig, label_space: LabelSpace, load_weights: bool = True,
                 backbone: nn.Module | None = None):
        """``backbone`` (optional): your own feature extractor in place of ``cfg.backbone``'s: a module returning an
        ordered dict of maps '0', '1', '2', 'pool' (strides 8, 16, 32, 64) with ``out_channels`` channels each,
        e.g. ``scaledet.backbones.BodyWithFPN(your_body, its_channels, 256)`` around a body returning 3 maps.
        Images are still normalised with the mean and std of ``cfg.backbone``'s ``cfg.weights``."""
        spec = input_normalization(cfg.backbone, cfg.weights)
        if backbone is None:
            backbone = build_backbone(cfg.backbone, cfg.weights, cfg.fpn_channels, load=load_weights)
        elif not isinstance(getattr(backbone, "out_channels", None), int):
            raise ConfigError(f"a backbone given to the detector needs an int attribute 'out_channels' (the channels "
                              f"of its feature maps); {type(backbone).__name__} has none")
        super().__init__(
            backbone, num_classes=None, min_size=cfg.min_size_test, max_size=cfg.max_size_test,
            image_mean=list(spec.mean), image_std=list(spec.std),
            box_predictor=nn.Identity(),  # replaced below
            rpn_batch_size_per_image=cfg.rpn_batch_size_per_image, **_anchors_and_pool(),
        )
        self.config = cfg
        self.transform = _Transform(cfg.min_size_test, cfg.max_size_test, list(spec.mean), list(spec.std))
        if cfg.federated_loss and cfg.federated_classes < 1:
            raise ConfigError(f"model.federated_classes must be >= 1, got {cfg.federated_classes}")
        resolution = self.roi_heads.box_roi_pool.output_size[0]
        box_head = TwoMLPHead(backbone.out_channels * resolution**2, cfg.representation_size)
        old = self.roi_heads
        self.roi_heads = ScaleDetRoIHeads(
            old.box_roi_pool, box_head,
            ScaleDetPredictor(cfg.representation_size, label_space.dim, cfg.tau, cfg.prior_prob),
            0.5, 0.5, cfg.box_batch_size_per_image, 0.25, None,
            cfg.score_thresh, cfg.nms_thresh, cfg.detections_per_image, soft_weight=cfg.soft_weight,
            federated_classes=cfg.federated_classes if cfg.federated_loss else None,
        )
        self.label_space: LabelSpace = label_space
        self._frequencies_for: str | None = None  # fingerprint of the label space the class frequencies count
        self.set_label_space(label_space)

    def set_label_space(self, label_space: LabelSpace) -> None:
        """Use ``label_space`` for training targets and inference outputs (weights untouched)."""
        if self.label_space.dim != label_space.dim:
            raise CheckpointError(
                f"label space embeddings have dimension {label_space.dim}, the head expects {self.label_space.dim}"
            )
        device = self.roi_heads.box_predictor.bbox_pred.weight.device
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
        device = self.roi_heads.box_predictor.bbox_pred.weight.device
        self.roi_heads.freq_weight = counts.sqrt().to(device)
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

    def forward(self, images, targets=None):
        """Training: ``targets`` labels are label-space indices (shifted to torchvision's 0 = background)."""
        if self.training and targets is not None and self.roi_heads.federated_classes is not None:
            if self._frequencies_for is None:
                raise _no_frequencies("the detector has no class frequencies")
            if self._frequencies_for != self.label_space.fingerprint:
                raise _no_frequencies("its class frequencies were counted for another label space than the "
                                      f"current one ({self.label_space.fingerprint})")
        if targets is not None:
            targets = [{**t, "labels": t["labels"] + 1} for t in targets]
        return super().forward(images, targets)

    def label_state(self) -> dict:
        """The current label space as a checkpoint-ready dict (with its fingerprint)."""
        return {**self.label_space.to_state(), "fingerprint": self.label_space.fingerprint}


def _no_frequencies(problem: str) -> ConfigError:
    return ConfigError(
        f"model.federated_loss is on but {problem}: the federated loss draws its negative classes by image counts; "
        "call ScaleDetDetector.set_class_frequencies(counts) for the training label space (scaledet.engine.train "
        "does) or set model.federated_loss=false"
    )


def build_detector(cfg: ModelConfig, label_space: LabelSpace, load_weights: bool = True,
                   backbone: nn.Module | None = None) -> ScaleDetDetector:
    """The ScaleDet detector for ``cfg`` over ``label_space``; ``load_weights=False`` builds the same
    architecture without reading backbone weights (they come from a detector checkpoint next); ``backbone``
    replaces ``cfg.backbone``'s with your own module (see :class:`ScaleDetDetector`)."""
    return ScaleDetDetector(cfg, label_space, load_weights, backbone)


def build_softmax_detector(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """The stock torchvision Faster R-CNN (softmax over n + 1, per-class boxes) on the same backbone.

    For benchmarks and baselines that compare against the unmodified head.
    """
    spec = input_normalization(cfg.backbone, cfg.weights)
    backbone = build_backbone(cfg.backbone, cfg.weights, cfg.fpn_channels)
    model = FasterRCNN(
        backbone, num_classes=num_classes + 1, min_size=cfg.min_size_test, max_size=cfg.max_size_test,
        image_mean=list(spec.mean), image_std=list(spec.std), rpn_batch_size_per_image=cfg.rpn_batch_size_per_image,
        box_batch_size_per_image=cfg.box_batch_size_per_image, box_score_thresh=cfg.score_thresh,
        box_nms_thresh=cfg.nms_thresh, box_detections_per_img=cfg.detections_per_image, **_anchors_and_pool(),
    )
    model.transform = _Transform(cfg.min_size_test, cfg.max_size_test, list(spec.mean), list(spec.std))
    return model
