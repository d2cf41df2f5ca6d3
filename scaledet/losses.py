"""ScaleDet's classification losses (paper eq. 6-8) as pure tensor functions.

Shapes: R regions, n labels of the unified label space. ``cos`` are the visual-textual cosine similarities
``c_i = [cos(v_i, t_1) ... cos(v_i, t_n)]`` (eq. 5), *not* divided by the temperature.

The federated loss (:func:`federated_classes`, :func:`federated_hard_label_loss`) is an option that is not in the
ScaleDet paper: Detic / CenterNet2's LVIS recipe (Zhou et al., "Probabilistic two-stage detection"; Detic's
``use_fed_loss``), where eq. 6 of a batch covers only a sampled subset of the labels.
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


def federated_classes(gt_labels: Tensor, freq_weight: Tensor, num_classes: int) -> Tensor:
    """The labels the federated hard label loss covers for one batch, sorted (int64, on ``freq_weight``'s device).

    Every label in ``gt_labels`` (negative values, i.e. background regions, are ignored), plus negatives drawn
    without replacement with probability proportional to ``freq_weight`` (``image_count ** 0.5`` per label) until
    there are ``num_classes`` labels, or all n labels when ``num_classes >= n`` (no drawing then). More
    ground-truth labels than ``num_classes`` are all kept. Labels of weight 0 (no training image) are drawn only
    once every label of positive weight is taken, then uniformly. Draws use the global torch RNG of the device
    (``torch.multinomial`` / ``torch.randperm`` without a generator), so ``torch.manual_seed`` fixes them and a
    resumed run that restores the RNG state draws what the uninterrupted run would have.
    """
    if freq_weight.dim() != 1:
        raise ValueError(f"freq_weight must be [n], got {list(freq_weight.shape)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    n, device = freq_weight.shape[0], freq_weight.device
    if num_classes >= n:
        return torch.arange(n, device=device)
    present = gt_labels.to(device)
    present = present[present >= 0].unique()
    if present.numel() and int(present.max()) >= n:
        raise ValueError(f"ground-truth label {int(present.max())} is outside the {n} labels")
    need = num_classes - present.numel()
    if need <= 0:
        return present
    weights = freq_weight.detach().float().clone()
    weights[present] = 0.0
    chosen = [present]
    take = min(need, int((weights > 0).sum()))
    if take > 0:
        chosen.append(torch.multinomial(weights, take, replacement=False))
    if take < need:  # too few labels with training images: the rest uniformly among the weight-0 negatives
        unseen = weights == 0
        unseen[present] = False
        rest = unseen.nonzero(as_tuple=True)[0]
        chosen.append(rest[torch.randperm(rest.numel(), device=device)[: need - take]])
    return torch.cat(chosen).sort().values


def federated_hard_label_loss(cos: Tensor, targets: Tensor, classes: Tensor, tau: float,
                              bias: Tensor | float = 0.0) -> Tensor:
    """Eq. 6 restricted to the label columns ``classes``: the BCE summed over those labels (for every region,
    background included) and divided by the number R of regions, as :func:`hard_label_loss`; the other labels get
    no loss and no gradient from it. With all labels as ``classes`` it equals :func:`hard_label_loss`."""
    _check_pair(cos, targets, "targets")
    if classes.dim() != 1:
        raise ValueError(f"classes must be [k], got {list(classes.shape)}")
    classes = classes.to(cos.device)
    if isinstance(bias, Tensor) and bias.dim() == 1:  # a per-label bias follows its columns
        bias = bias.index_select(0, classes)
    return hard_label_loss(cos.index_select(1, classes), targets.index_select(1, classes), tau, bias=bias)


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
    freq_weight: Tensor | None = None,
    fed_num_classes: int = 50,
) -> ClassificationLoss:
    """Eq. 8: ``L_hl + soft_weight * L_sl``.

    ``labels[r]`` is the region's index in the unified label space, or any negative value for a
    background region. Only foreground regions enter ``L_sl``. ``similarity`` is the n x n matrix of
    eq. 3-4; ``None`` (or ``soft_weight == 0``) gives the hard-label-only ablation (``soft`` = 0).

    ``freq_weight`` ([n], ``image_count ** 0.5`` per label) switches on the federated loss (an option, not in the
    paper): ``L_hl`` covers only :func:`federated_classes` (the batch's ground-truth labels plus negatives drawn by
    ``freq_weight``, ``fed_num_classes`` in all). ``L_sl`` is unchanged: still over all n labels.
    """
    if labels.dim() != 1 or labels.shape[0] != cos.shape[0]:
        raise ValueError(f"labels must have shape [{cos.shape[0]}], got {list(labels.shape)}")
    foreground = labels >= 0
    targets = torch.zeros_like(cos)
    if foreground.any():
        targets[foreground.nonzero(as_tuple=True)[0], labels[foreground]] = 1.0
    if freq_weight is None:
        hard = hard_label_loss(cos, targets, tau, bias=bias)
    else:
        if freq_weight.shape != cos.shape[1:]:
            raise ValueError(f"freq_weight must have shape [{cos.shape[1]}], got {list(freq_weight.shape)}")
        classes = federated_classes(labels, freq_weight, fed_num_classes)
        hard = federated_hard_label_loss(cos, targets, classes, tau, bias=bias)
    if similarity is None or soft_weight == 0:
        soft = cos.new_zeros(())
        return ClassificationLoss(hard, hard, soft)
    soft = soft_label_loss(cos[foreground], similarity[labels[foreground]])
    return ClassificationLoss(hard + soft_weight * soft, hard, soft)


def _check_pair(cos: Tensor, other: Tensor, name: str) -> None:
    if cos.dim() != 2 or other.shape != cos.shape:
        raise ValueError(f"cos must be [R, n] and {name} the same shape; got {list(cos.shape)} and {list(other.shape)}")
