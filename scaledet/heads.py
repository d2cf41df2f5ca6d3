"""The cosine-similarity box classifier (paper eq. 5): region features scored against label embeddings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
