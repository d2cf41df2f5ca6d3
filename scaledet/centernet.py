"""CenterNet2's first stage: a class-agnostic CenterNet on FPN levels P3-P7 whose object likelihoods score the
proposals (Zhou, Koltun, Krähenbühl 2021, "Probabilistic two-stage detection").

The numbers are CenterNet2's (its ``Base-CenterNet2.yaml`` and defaults), listed in docs/library.md:

- **Head**, shared by the five levels: a tower of ``convs`` 3x3 convolutions (GroupNorm 32, ReLU), then a 3x3
  convolution to one heatmap logit and one to four distances (left, top, right, bottom) in units of the level's
  stride, times a learnable per-level scale, through a ReLU.
- **Targets** (:func:`centernet_targets`): an object's center location is positive on each level whose size range
  (:data:`SIZES_OF_INTEREST`, on half the box diagonal) holds it. Every location's heatmap target is
  ``exp(-d^2 / r^2)`` (0 below 1e-4), ``d`` its distance to the nearest object center (0 at the center's own
  location) and ``r^2 = max(2 delta^2 area, 4^2)``, ``delta = (1 - 0.8) / (1 + 0.8)``. A location regresses the
  object nearest to it (in ``d^2 / r^2``) among those whose center is in its 3x3 window, that contain it and that
  its level is in charge of; others regress nothing.
- **Loss** (:func:`heatmap_focal_loss`, :func:`giou_loss`): the focal heatmap loss (alpha 0.25, gamma 2,
  beta 4, predictions clamped to [1e-4, 1 - 1e-4], negatives predicted above 0.85 ignored), its positive and
  negative parts weighted 0.5 each and divided by the number of positive locations (averaged over ranks); a GIoU
  loss (weight 1) over the regressing locations, divided by their number (averaged over ranks).
- **Proposals** (:meth:`CenterNetProposals.proposals`): per level the best 4,000 (training) / 1,000 (test)
  locations of likelihood above 1e-4, scored ``sqrt(sigmoid(heatmap))``; NMS at IoU 0.9 over all levels; the best
  2,000 (training) / 256 (test) per image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import nms

STRIDES = (8, 16, 32, 64, 128)  # P3-P7
SIZES_OF_INTEREST = ((0.0, 80.0), (64.0, 160.0), (128.0, 320.0), (256.0, 640.0), (512.0, 1e8))
HEATMAP_OVERLAP = 0.8  # CenterNet2's HM_MIN_OVERLAP: delta = (1 - 0.8) / (1 + 0.8)
MIN_RADIUS = 4.0
FOCAL_ALPHA, FOCAL_GAMMA, FOCAL_BETA = 0.25, 2.0, 4.0
SIGMOID_CLAMP = 1e-4
IGNORE_HIGH_FP = 0.85
POS_WEIGHT = NEG_WEIGHT = 0.5
REG_WEIGHT = 1.0
SCORE_THRESH = 1e-4
PRE_NMS = {True: 4000, False: 1000}  # per level, keyed by training
POST_NMS = {True: 2000, False: 256}  # per image
NMS_IOU = 0.9


class _Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class CenterNetHead(nn.Module):
    """Per level: heatmap logits ``[B, 1, H, W]`` and box distances ``[B, 4, H, W]`` (stride units, >= 0)."""

    def __init__(self, channels: int, convs: int = 4, levels: int = len(STRIDES), prior_prob: float = 0.01):
        super().__init__()
        if convs < 0:
            raise ValueError(f"model.proposal_convs must be >= 0, got {convs}")
        tower: list[nn.Module] = []
        for _ in range(convs):
            tower += [nn.Conv2d(channels, channels, 3, padding=1),
                      nn.GroupNorm(32 if channels % 32 == 0 else 1, channels), nn.ReLU()]
        self.tower = nn.Sequential(*tower)
        self.heatmap = nn.Conv2d(channels, 1, 3, padding=1)
        self.box = nn.Conv2d(channels, 4, 3, padding=1)
        self.scales = nn.ModuleList(_Scale() for _ in range(levels))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.constant_(module.bias, 0.0)
        nn.init.constant_(self.box.bias, 8.0)
        nn.init.constant_(self.heatmap.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        heatmaps, boxes = [], []
        for level, feature in enumerate(features):
            x = self.tower(feature)
            heatmaps.append(self.heatmap(x))
            boxes.append(F.relu(self.scales[level](self.box(x))))
        return heatmaps, boxes


def location_grid(shapes: Sequence[tuple[int, int]], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Centers ``[M, 2]`` (x, y in pixels) of all locations of the levels of ``shapes`` (row-major, level after
    level), their strides ``[M]`` and their level index ``[M]``."""
    points, strides, levels = [], [], []
    for level, (h, w) in enumerate(shapes):
        s = STRIDES[level]
        ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                                torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
        points.append(torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1) * s + s // 2)
        strides.append(torch.full((h * w,), float(s), device=device))
        levels.append(torch.full((h * w,), level, device=device, dtype=torch.long))
    return torch.cat(points), torch.cat(strides), torch.cat(levels)


def centernet_targets(boxes: Tensor, shapes: Sequence[tuple[int, int]]) -> tuple[Tensor, Tensor, Tensor]:
    """One image's targets over the locations of levels ``shapes`` (P3 first) for ground-truth ``boxes [N, 4]``
    (xyxy pixels): positive location indices ``[P]``, heatmap targets ``[M]`` and box distances ``[M, 4]`` in
    stride units (-1 where a location regresses nothing). See the module docstring for the rules."""
    grid, strides, levels = location_grid(shapes, boxes.device)
    m, n = grid.shape[0], boxes.shape[0]
    if n == 0:
        return (torch.zeros(0, dtype=torch.long, device=boxes.device), grid.new_zeros(m), grid.new_full((m, 4), -1.0))
    ranges = torch.tensor(SIZES_OF_INTEREST, device=boxes.device)
    half_diagonal = (boxes[:, 2:] - boxes[:, :2]).norm(dim=1) / 2  # [N]
    in_charge = (half_diagonal[None, :] >= ranges[:, :1]) & (half_diagonal[None, :] <= ranges[:, 1:])  # [L, N]
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2  # [N, 2]
    distances = torch.stack([grid[:, None, 0] - boxes[None, :, 0], grid[:, None, 1] - boxes[None, :, 1],
                             boxes[None, :, 2] - grid[:, None, 0], boxes[None, :, 3] - grid[:, None, 1]], dim=2)
    center_cell = (centers[None] / strides[:, None, None]).floor() * strides[:, None, None] + strides[:, None, None] / 2
    offset = (grid[:, None, :] - center_cell).abs()  # [M, N, 2]
    is_peak = (offset == 0).all(dim=2)
    window = (offset <= strides[:, None, None]).all(dim=2) & (distances.min(dim=2).values > 0)
    regresses = window & in_charge[levels]  # [M, N]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    radius2 = (((1 - HEATMAP_OVERLAP) / (1 + HEATMAP_OVERLAP)) ** 2 * 2 * area).clamp(min=MIN_RADIUS**2)
    dist2 = ((grid[:, None, :] - centers[None]) ** 2).sum(dim=2)
    weighted = torch.where(is_peak, torch.zeros_like(dist2), dist2) / radius2[None]  # [M, N]
    heat = torch.exp(-weighted.min(dim=1).values)
    heat = torch.where(heat < 1e-4, torch.zeros_like(heat), heat)
    nearest = torch.where(regresses, weighted, torch.full_like(weighted, math.inf)).min(dim=1)
    reg = distances[torch.arange(m, device=boxes.device), nearest.indices] / strides[:, None]
    reg = torch.where(torch.isinf(nearest.values)[:, None], torch.full_like(reg, -1.0), reg)
    return _positive_locations(centers, in_charge, shapes), heat, reg


def _positive_locations(centers: Tensor, in_charge: Tensor, shapes: Sequence[tuple[int, int]]) -> Tensor:
    """Index of each object's center location on each level in charge of it (levels concatenated)."""
    found, base = [], 0
    for level, (h, w) in enumerate(shapes):
        cell = (centers / STRIDES[level]).long()
        cx, cy = cell[:, 0].clamp(0, w - 1), cell[:, 1].clamp(0, h - 1)
        found.append((base + cy * w + cx)[in_charge[level]])
        base += h * w
    return torch.cat(found)


def heatmap_focal_loss(logits: Tensor, targets: Tensor, positives: Tensor) -> tuple[Tensor, Tensor]:
    """CenterNet's focal heatmap loss, summed: ``(pos, neg)`` with
    ``pos = -alpha * sum_{positives} log(p) (1 - p)^gamma`` and
    ``neg = -(1 - alpha) * sum_{all} log(1 - p) p^gamma (1 - t)^beta [p < 0.85]``, ``p = clamp(sigmoid(logit))``."""
    p = logits.float().sigmoid().clamp(SIGMOID_CLAMP, 1 - SIGMOID_CLAMP)
    p_pos = p[positives]
    pos = -(torch.log(p_pos) * (1 - p_pos) ** FOCAL_GAMMA).sum()
    neg_terms = torch.log(1 - p) * p**FOCAL_GAMMA * (1 - targets) ** FOCAL_BETA
    neg = -(neg_terms * (p < IGNORE_HIGH_FP)).sum()
    return FOCAL_ALPHA * pos, (1 - FOCAL_ALPHA) * neg


def giou_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Sum of ``1 - GIoU`` of boxes given as (left, top, right, bottom) distances from the same points (IoU with
    +1 smoothing of intersection and union, as CenterNet2's)."""
    pred, target = pred.float(), target.float()
    area_p = (pred[:, 0] + pred[:, 2]) * (pred[:, 1] + pred[:, 3])
    area_t = (target[:, 0] + target[:, 2]) * (target[:, 1] + target[:, 3])
    inter = (torch.min(pred[:, 0], target[:, 0]) + torch.min(pred[:, 2], target[:, 2])) * \
        (torch.min(pred[:, 1], target[:, 1]) + torch.min(pred[:, 3], target[:, 3]))
    enclosing = (torch.max(pred[:, 0], target[:, 0]) + torch.max(pred[:, 2], target[:, 2])) * \
        (torch.max(pred[:, 1], target[:, 1]) + torch.max(pred[:, 3], target[:, 3]))
    union = area_p + area_t - inter
    giou = (inter + 1) / (union + 1) - (enclosing - union) / enclosing.clamp(min=1e-6)
    return (1 - giou).sum()


def _mean_over_ranks(count: float, device: torch.device) -> float:
    if dist.is_available() and dist.is_initialized():
        total = torch.tensor([count], device=device, dtype=torch.float32)
        dist.all_reduce(total)
        return float(total.item()) / dist.get_world_size()
    return count


class CenterNetProposals(nn.Module):
    """The first stage: :class:`CenterNetHead` over P3-P7, its losses in training, proposals always."""

    def __init__(self, channels: int, convs: int = 4):
        super().__init__()
        self.head = CenterNetHead(channels, convs)

    def forward(self, features: Sequence[Tensor], image_sizes: Sequence[tuple[int, int]],
                targets: list[dict[str, Tensor]] | None = None
                ) -> tuple[list[Tensor], list[Tensor], dict[str, Tensor]]:
        """Proposal boxes ``[P_i, 4]`` and object likelihoods ``[P_i]`` per image, and (training) the losses."""
        heatmaps, boxes = self.head(features)
        losses = self.losses(heatmaps, boxes, targets) if self.training and targets is not None else {}
        proposals, scores = self.proposals(heatmaps, boxes, image_sizes)
        return proposals, scores, losses

    def losses(self, heatmaps: list[Tensor], boxes: list[Tensor], targets: list[dict[str, Tensor]]
               ) -> dict[str, Tensor]:
        shapes = [tuple(h.shape[-2:]) for h in heatmaps]
        logits = torch.cat([h.flatten(start_dim=1) for h in heatmaps], dim=1)  # [B, M]
        distances = torch.cat([b.flatten(start_dim=2) for b in boxes], dim=2).transpose(1, 2)  # [B, M, 4]
        positives, heat, reg = [], [], []
        for i, target in enumerate(targets):
            pos, h, r = centernet_targets(target["boxes"].float(), shapes)
            positives.append(pos + i * logits.shape[1])
            heat.append(h)
            reg.append(r)
        positives_all, heat_all, reg_all = torch.cat(positives), torch.cat(heat), torch.cat(reg)
        pos, neg = heatmap_focal_loss(logits.reshape(-1), heat_all, positives_all)
        norm = max(_mean_over_ranks(float(positives_all.numel()), logits.device), 1.0)
        regressing = torch.where(reg_all.min(dim=1).values >= 0)[0]
        reg_norm = max(_mean_over_ranks(float(regressing.numel()), logits.device), 1.0)
        box = giou_loss(distances.reshape(-1, 4)[regressing], reg_all[regressing])
        return {"loss_proposal_pos": POS_WEIGHT * pos / norm, "loss_proposal_neg": NEG_WEIGHT * neg / norm,
                "loss_proposal_box": REG_WEIGHT * box / reg_norm}

    @torch.no_grad()
    def proposals(self, heatmaps: list[Tensor], boxes: list[Tensor], image_sizes: Sequence[tuple[int, int]]
                  ) -> tuple[list[Tensor], list[Tensor]]:
        """Per image: boxes ``[P, 4]`` (xyxy) and scores ``sqrt(sigmoid(heatmap))`` ``[P]``, as described above."""
        training = self.training
        shapes = [tuple(h.shape[-2:]) for h in heatmaps]
        grids = location_grid(shapes, heatmaps[0].device)[0].split([h * w for h, w in shapes])
        out_boxes, out_scores = [], []
        for i in range(len(image_sizes)):
            level_boxes, level_scores = [], []
            for level, (heatmap, distance) in enumerate(zip(heatmaps, boxes)):
                likelihood = heatmap[i, 0].float().sigmoid().reshape(-1)
                keep = torch.where(likelihood > SCORE_THRESH)[0]
                if keep.numel() > PRE_NMS[training]:
                    keep = keep[likelihood[keep].topk(PRE_NMS[training]).indices]
                ltrb = distance[i].float().reshape(4, -1)[:, keep].t() * STRIDES[level]
                points = grids[level][keep]
                x0y0 = points - ltrb[:, :2]
                x1y1 = torch.max(points + ltrb[:, 2:], x0y0 + 0.01)
                level_boxes.append(torch.cat([x0y0, x1y1], dim=1))
                level_scores.append(likelihood[keep].sqrt())
            found, scores = torch.cat(level_boxes), torch.cat(level_scores)
            kept = nms(found, scores, NMS_IOU)[: POST_NMS[training]]
            out_boxes.append(found[kept].detach())
            out_scores.append(scores[kept].detach())
        return out_boxes, out_scores
