"""The box classifier both detectors share: the cosine classifier (paper eq. 5) scoring region features against label
embeddings, the predictor around it, and the per-image selection of detections."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, remove_small_boxes

from scaledet.losses import DEFAULT_TAU


class CosineClassifier(nn.Module):
    """Project region features to the text dimension and take cosines with the label embeddings.

    The vocabulary is a forward argument, so it can change per batch or at test time. Scores are
    ``sigmoid(cos / tau + bias)`` with a learnable scalar bias initialised from ``prior_prob`` (Detic /
    focal-loss style), so that an untrained head predicts ``prior_prob`` for every label.
    """

    def __init__(self, in_features: int, embed_dim: int, tau: float = DEFAULT_TAU, prior_prob: float = 0.01):
        super().__init__()
        if not 0.0 < prior_prob < 1.0:
            raise ValueError(f"prior_prob must be in (0, 1), got {prior_prob}")
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        self.projection = nn.Linear(in_features, embed_dim)
        self.tau = float(tau)
        self.bias = nn.Parameter(torch.tensor(-math.log((1.0 - prior_prob) / prior_prob)))

    def forward(self, features: Tensor, label_embeddings: Tensor) -> Tensor:
        """Cosines ``[R, n]`` between projected region features ``[R, in]`` and label embeddings ``[n, D]``."""
        visual = F.normalize(self.projection(features), dim=-1)
        text = F.normalize(label_embeddings.to(visual.dtype), dim=-1)
        return visual @ text.t()

    def logits(self, cos: Tensor) -> Tensor:
        """``cos / tau + bias``: what the sigmoid and the hard label loss see."""
        return cos / self.tau + self.bias

    def scores(self, cos: Tensor) -> Tensor:
        """Per-label probabilities (independent sigmoids, no softmax, no background column)."""
        return torch.sigmoid(self.logits(cos))


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


MAX_CANDIDATES = 1000  # (region, label) pairs kept per image before NMS


def select_detections(scores: Tensor, boxes: Tensor, score_thresh: float, nms_thresh: float,
                      detections_per_image: int) -> dict[str, Tensor]:
    """One image's detections from per-label ``scores [R, n]`` of regions with class-agnostic ``boxes [R, 4]``:
    (region, label) pairs above ``score_thresh``, the best :data:`MAX_CANDIDATES` of them, tiny boxes dropped,
    NMS per label at ``nms_thresh``, then the best ``detections_per_image``."""
    flat = scores.flatten()
    keep = torch.where(flat > score_thresh)[0]
    if keep.numel() > MAX_CANDIDATES:
        keep = keep[flat[keep].topk(MAX_CANDIDATES).indices]
    n = scores.shape[1]
    regions, labels, kept_scores = keep // n, keep % n, flat[keep]
    kept_boxes = boxes[regions]
    large = remove_small_boxes(kept_boxes, 1e-2)
    kept_boxes, labels, kept_scores = kept_boxes[large], labels[large], kept_scores[large]
    survivors = batched_nms(kept_boxes, kept_scores, labels, nms_thresh)[:detections_per_image]
    return {"boxes": kept_boxes[survivors], "scores": kept_scores[survivors], "labels": labels[survivors]}
