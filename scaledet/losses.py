"""ScaleDet's classification losses (paper eq. 6-8) as pure tensor functions.

Shapes: R regions, n labels of the unified label space. ``cos`` are the visual-textual cosine similarities
``c_i = [cos(v_i, t_1) ... cos(v_i, t_n)]`` (eq. 5), *not* divided by the temperature.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_TAU = 0.02
DEFAULT_SOFT_WEIGHT = 10.0


class ClassificationLoss(NamedTuple):
    """``total = hard + soft_weight * soft`` (eq. 8), with the parts kept for logging."""

    total: Tensor
    hard: Tensor
    soft: Tensor


def hard_label_loss(cos: Tensor, targets: Tensor, tau: float, bias: Tensor | float = 0.0) -> Tensor:
    """Eq. 6: sigmoid BCE of ``cos / tau (+ bias)`` against 0/1 targets.

    Summed over the n labels and averaged over the R regions; a background region has an all-zero
    target row. With R = 0 the result is 0 and still carries a gradient to ``cos``.
    """
    _check_pair(cos, targets, "targets")
    logits = cos / tau + bias
    per_element = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    if cos.shape[0] == 0:
        return per_element.sum()
    return per_element.sum() / cos.shape[0]


def soft_label_loss(cos: Tensor, sim_rows: Tensor) -> Tensor:
    """Eq. 7: mean squared error between cosines and similarity rows, averaged over all R x n elements.

    With R = 0 the result is 0 (with a gradient to ``cos``).
    """
    _check_pair(cos, sim_rows, "sim_rows")
    if cos.numel() == 0:
        return cos.sum()
    return F.mse_loss(cos, sim_rows.to(cos.dtype), reduction="mean")


def scaledet_classification_loss(
    cos: Tensor,
    labels: Tensor,
    similarity: Tensor | None,
    tau: float = DEFAULT_TAU,
    soft_weight: float = DEFAULT_SOFT_WEIGHT,
    bias: Tensor | float = 0.0,
) -> ClassificationLoss:
    """Eq. 8: ``L_hl + soft_weight * L_sl``.

    ``labels[r]`` is the region's index in the unified label space, or any negative value for a
    background region. Only foreground regions enter ``L_sl``. ``similarity`` is the n x n matrix of
    eq. 3-4; ``None`` (or ``soft_weight == 0``) gives the hard-label-only ablation (``soft`` = 0).
    """
    if labels.dim() != 1 or labels.shape[0] != cos.shape[0]:
        raise ValueError(f"labels must have shape [{cos.shape[0]}], got {list(labels.shape)}")
    foreground = labels >= 0
    targets = torch.zeros_like(cos)
    if foreground.any():
        targets[foreground.nonzero(as_tuple=True)[0], labels[foreground]] = 1.0
    hard = hard_label_loss(cos, targets, tau, bias=bias)
    if similarity is None or soft_weight == 0:
        soft = cos.new_zeros(())
        return ClassificationLoss(hard, hard, soft)
    soft = soft_label_loss(cos[foreground], similarity[labels[foreground]])
    return ClassificationLoss(hard + soft_weight * soft, hard, soft)


def _check_pair(cos: Tensor, other: Tensor, name: str) -> None:
    if cos.dim() != 2 or other.shape != cos.shape:
        raise ValueError(f"cos must be [R, n] and {name} the same shape; got {list(cos.shape)} and {list(other.shape)}")
