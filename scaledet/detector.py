"""The ScaleDet detectors, chosen by ``model.detector`` (:func:`build_detector`): torchvision's Faster R-CNN + FPN
whose box classifier is the cosine head (``faster_rcnn``, here), or the paper's CenterNet2 (``centernet2``,
:mod:`scaledet.centernet2`).

Box regression is **class-agnostic** (one box per region): the vocabulary changes at test time, so
per-class regressors trained for the training labels would mean nothing for a new dataset's labels, and
with n = 2249 labels a per-class regressor would be a 1024 x 8996 layer for no gain (Detic and CenterNet2
regress class-agnostically for the same reason).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import MultiScaleRoIAlign, clip_boxes_to_image

from scaledet.backbones import build_backbone, input_normalization
from scaledet.centernet2 import CenterNet2Detector
from scaledet.config import ModelConfig
from scaledet.detector_parts import (
    InputTransform,
    VocabularyMixin,
    check_federated,
    detector_backbone,
    region_classification_loss,
)
from scaledet.errors import ConfigError
from scaledet.heads import ScaleDetPredictor, select_detections
from scaledet.labels import LabelSpace
from scaledet.names import did_you_mean

log = logging.getLogger(__name__)

DETECTORS = ("faster_rcnn", "centernet2")  # model.detector


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
        cls = region_classification_loss(cos, labels - 1, self.box_predictor.classifier, self)
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
        return select_detections(scores, boxes, self.score_thresh, self.nms_thresh, self.detections_per_img)


class ScaleDetDetector(VocabularyMixin, FasterRCNN):
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
        backbone = detector_backbone(cfg, load_weights, backbone)
        super().__init__(
            backbone, num_classes=None, min_size=cfg.min_size_test, max_size=cfg.max_size_test,
            image_mean=list(spec.mean), image_std=list(spec.std),
            box_predictor=nn.Identity(),  # replaced below
            rpn_batch_size_per_image=cfg.rpn_batch_size_per_image, **_anchors_and_pool(),
        )
        self.config = cfg
        self.transform = InputTransform(cfg.min_size_test, cfg.max_size_test, list(spec.mean), list(spec.std))
        federated = check_federated(cfg)
        resolution = self.roi_heads.box_roi_pool.output_size[0]
        box_head = TwoMLPHead(backbone.out_channels * resolution**2, cfg.representation_size)
        old = self.roi_heads
        self.roi_heads = ScaleDetRoIHeads(
            old.box_roi_pool, box_head,
            ScaleDetPredictor(cfg.representation_size, label_space.dim, cfg.tau, cfg.prior_prob),
            0.5, 0.5, cfg.box_batch_size_per_image, 0.25, None,
            cfg.score_thresh, cfg.nms_thresh, cfg.detections_per_image, soft_weight=cfg.soft_weight,
            federated_classes=federated,
        )
        self._init_vocabulary(label_space)

    def forward(self, images, targets=None):
        """Training: ``targets`` labels are label-space indices (shifted to torchvision's 0 = background)."""
        self._check_frequencies(self.training and targets is not None)
        if targets is not None:
            targets = [{**t, "labels": t["labels"] + 1} for t in targets]
        return super().forward(images, targets)


Detector = ScaleDetDetector | CenterNet2Detector


def check_detector(cfg: ModelConfig) -> None:
    """``ConfigError`` naming ``model.detector`` when it is not one of :data:`DETECTORS`."""
    if cfg.detector not in DETECTORS:
        raise ConfigError(f"model.detector is {cfg.detector!r}{did_you_mean(cfg.detector, DETECTORS)}; "
                          f"expected one of {', '.join(DETECTORS)}")


def build_detector(cfg: ModelConfig, label_space: LabelSpace, load_weights: bool = True,
                   backbone: nn.Module | None = None) -> Detector:
    """The ScaleDet detector ``cfg.detector`` names over ``label_space``; ``load_weights=False`` builds the same
    architecture without reading backbone weights (they come from a detector checkpoint next); ``backbone``
    replaces ``cfg.backbone``'s with your own module (see :class:`ScaleDetDetector`)."""
    check_detector(cfg)
    if cfg.detector == "centernet2":
        return CenterNet2Detector(cfg, label_space, load_weights, backbone)
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
    model.transform = InputTransform(cfg.min_size_test, cfg.max_size_test, list(spec.mean), list(spec.std))
    return model
