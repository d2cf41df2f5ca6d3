"""The paper's detector (§4.1): CenterNet2, a probabilistic two-stage detector. A class-agnostic CenterNet proposes
(:mod:`scaledet.centernet`) and a 3-stage cascade with the ScaleDet classifier scores (:mod:`scaledet.cascade`);
a box's score is ``sqrt(class score x object likelihood)``.

The backbone and its FPN are the ones :mod:`scaledet.backbones` builds for both detectors (P3-P5 from the body);
P6 and P7 are CenterNet2's: 3x3 stride-2 convolutions on P5, and on ReLU(P6).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from scaledet.backbones import input_normalization
from scaledet.cascade import LEVELS, CascadeRoIHeads
from scaledet.centernet import CenterNetProposals
from scaledet.config import ModelConfig
from scaledet.detector_parts import InputTransform, VocabularyMixin, check_federated, detector_backbone
from scaledet.labels import LabelSpace


class TopLevels(nn.Module):
    """P6 = conv(P5), P7 = conv(ReLU(P6)), both 3x3 stride 2 (detectron2's ``LastLevelP6P7`` on P5)."""

    def __init__(self, channels: int):
        super().__init__()
        self.p6 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.p7 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        for conv in (self.p6, self.p7):
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.constant_(conv.bias, 0.0)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        """``{"p3" .. "p7"}`` from the FPN's maps '0', '1', '2' (strides 8, 16, 32)."""
        p6 = self.p6(features["2"])
        return dict(zip(LEVELS, (features["0"], features["1"], features["2"], p6, self.p7(F.relu(p6)))))


class CenterNet2Detector(VocabularyMixin, nn.Module):
    """CenterNet2 with the ScaleDet classifier in each cascade stage; ``set_label_space`` swaps the vocabulary.

    The same contract as :class:`scaledet.detector.ScaleDetDetector`: training targets are
    ``{"boxes": [K, 4] xyxy, "labels": [K] indices into the current label space}`` and give a dict of losses;
    inference gives ``{"boxes", "scores", "labels"}`` per image, labels indexing the current label space.
    """

    def __init__(self, cfg: ModelConfig, label_space: LabelSpace, load_weights: bool = True,
                 backbone: nn.Module | None = None):
        super().__init__()
        spec = input_normalization(cfg.backbone, cfg.weights)
        self.config = cfg
        self.transform = InputTransform(cfg.min_size_test, cfg.max_size_test, list(spec.mean), list(spec.std))
        self.backbone = detector_backbone(cfg, load_weights, backbone)
        channels = self.backbone.out_channels
        self.top_levels = TopLevels(channels)
        self.proposal_generator = CenterNetProposals(channels, cfg.proposal_convs)
        self.roi_heads = CascadeRoIHeads(cfg, channels, label_space.dim, check_federated(cfg))
        self._init_vocabulary(label_space)

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None):
        """Training (with ``targets``): the losses; otherwise the detections in the input images' coordinates."""
        if self.training and targets is None:
            raise ValueError("in training mode the detector needs targets")
        self._check_frequencies(self.training and targets is not None)
        original_sizes = [tuple(img.shape[-2:]) for img in images]
        batch, targets = self.transform(images, targets)
        features = self.top_levels(self.backbone(batch.tensors))
        levels = [features[name] for name in LEVELS]
        proposals, scores, proposal_losses = self.proposal_generator(levels, batch.image_sizes, targets)
        detections, roi_losses = self.roi_heads(features, proposals, scores, batch.image_sizes, targets)
        if self.training:
            return {**proposal_losses, **roi_losses}
        return self.transform.postprocess(detections, batch.image_sizes, original_sizes)
