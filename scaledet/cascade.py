"""Cascade RoI heads (Cai & Vasconcelos, "Cascade R-CNN") with the ScaleDet classifier in every stage, scored
probabilistically as CenterNet2 does.

Stage k (IoU threshold ``model.cascade_ious[k]``, CenterNet2's 0.6 / 0.7 / 0.8) has its own box head (two fully
connected layers on 7x7 RoIAlign features of P3-P7), its own class-agnostic regressor (box coder weights
(10, 10, 5, 5) x (k + 1), detectron2's cascade) and its own cosine classifier; the label embeddings, the
similarity matrix and the loss settings are shared. Training: stage 0 takes the first stage's proposals plus the
ground-truth boxes, labels a proposal foreground when its IoU with a ground-truth box reaches the stage's threshold,
and samples ``model.box_batch_size_per_image`` regions with at most a quarter foreground; stage k > 0 takes stage
k - 1's refined boxes (detached, clipped, empty ones dropped), all of them, relabelled at its own threshold. Each
stage's pooled features pass their gradient scaled by 1 / stages. Each stage's loss is eq. 8 on its regions plus
an L1 box loss over its foreground regions divided by its number of regions.

Test time (:meth:`CascadeRoIHeads.detections`): every stage scores the boxes the previous stage refined; a box's
class score is the mean of the stages' sigmoid scores (Cascade R-CNN), its box the last stage's, and its final
score **sqrt(class score x proposal score)**, the proposal score being the first stage's ``sqrt(sigmoid(heatmap))``
(CenterNet2's probabilistic two-stage score, P(class) = P(class | object) P(object), as its code computes it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign, box_iou, clip_boxes_to_image

from scaledet.config import ModelConfig
from scaledet.detector_parts import region_classification_loss
from scaledet.heads import ScaleDetPredictor, select_detections

LEVELS = ("p3", "p4", "p5", "p6", "p7")
POSITIVE_FRACTION = 0.25


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def final_scores(stage_scores: list[Tensor], proposal_scores: Tensor) -> Tensor:
    """``sqrt(mean_k stage_scores[k] * proposal_scores[:, None])``: per-region, per-label final scores ``[R, n]``
    from each stage's class scores ``[R, n]`` and the first stage's proposal scores ``[R]``."""
    mean = torch.stack(stage_scores).mean(dim=0)
    return (mean * proposal_scores[:, None]).sqrt()


class CascadeRoIHeads(nn.Module):
    """The cascade; holds the vocabulary buffers (``label_embeddings``, ``similarity``, ``freq_weight``) and the
    test settings (``score_thresh``, ``nms_thresh``, ``detections_per_img``) the detector's vocabulary uses."""

    def __init__(self, cfg: ModelConfig, channels: int, embed_dim: int, federated_classes: int | None):
        super().__init__()
        if not cfg.cascade_ious or any(not 0 < iou < 1 for iou in cfg.cascade_ious):
            raise ValueError(f"model.cascade_ious must be IoU thresholds in (0, 1), got {list(cfg.cascade_ious)}")
        self.ious = tuple(float(iou) for iou in cfg.cascade_ious)
        self.box_roi_pool = MultiScaleRoIAlign(list(LEVELS), output_size=7, sampling_ratio=2)
        self.box_heads = nn.ModuleList(TwoMLPHead(channels * 49, cfg.representation_size) for _ in self.ious)
        self.box_predictors = nn.ModuleList(
            ScaleDetPredictor(cfg.representation_size, embed_dim, cfg.tau, cfg.prior_prob) for _ in self.ious)
        self.box_coders = [det_utils.BoxCoder((10.0 * (k + 1), 10.0 * (k + 1), 5.0 * (k + 1), 5.0 * (k + 1)))
                           for k in range(len(self.ious))]
        self.sampler = det_utils.BalancedPositiveNegativeSampler(cfg.box_batch_size_per_image, POSITIVE_FRACTION)
        self.soft_weight = float(cfg.soft_weight)
        self.federated_classes = federated_classes
        self.score_thresh, self.nms_thresh = cfg.score_thresh, cfg.nms_thresh
        self.detections_per_img = cfg.detections_per_image
        self.register_buffer("label_embeddings", torch.zeros(0, 0), persistent=False)
        self.register_buffer("similarity", torch.zeros(0, 0), persistent=False)
        self.register_buffer("freq_weight", torch.zeros(0), persistent=False)

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], proposal_scores: list[Tensor],
                image_sizes: list[tuple[int, int]], targets: list[dict[str, Tensor]] | None = None
                ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("the cascade needs targets in training")
            return [], self.losses(features, proposals, image_sizes, targets)
        return self.detections(features, proposals, proposal_scores, image_sizes), {}

    def _run_stage(self, k: int, features: dict[str, Tensor], boxes: list[Tensor],
                   image_sizes: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        pooled = self.box_roi_pool(features, boxes, image_sizes)
        if self.training:
            pooled = _ScaleGradient.apply(pooled, 1.0 / len(self.ious))
        return self.box_predictors[k](self.box_heads[k](pooled), self.label_embeddings)

    def _refine(self, k: int, deltas: Tensor, boxes: list[Tensor], image_sizes: list[tuple[int, int]]
                ) -> list[Tensor]:
        refined = self.box_coders[k].decode(deltas.detach().float(), boxes).reshape(-1, 4)
        return [clip_boxes_to_image(b, size) for b, size in zip(refined.split([len(b) for b in boxes]), image_sizes)]

    def label(self, k: int, boxes: Tensor, target: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Stage ``k``'s labels of ``boxes`` (label index, -1 = background: IoU with every ground-truth box below the
        stage's threshold) and the ground-truth box each is matched to (any box for background)."""
        gt_boxes, gt_labels = target["boxes"], target["labels"]
        if gt_boxes.numel() == 0:
            return torch.full((len(boxes),), -1, dtype=torch.long, device=boxes.device), torch.zeros_like(boxes)
        iou, matched = box_iou(gt_boxes, boxes).max(dim=0)
        labels = torch.where(iou >= self.ious[k], gt_labels[matched], torch.full_like(matched, -1))
        return labels, gt_boxes[matched]

    def _sample(self, proposals: list[Tensor], targets: list[dict[str, Tensor]]
                ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        boxes, labels, matched = [], [], []
        for p, t in zip(proposals, targets):
            candidates = torch.cat([p, t["boxes"].to(p.dtype)])
            lab, gt = self.label(0, candidates, t)
            positive, negative = self.sampler([lab + 1])
            keep = torch.where(positive[0] | negative[0])[0]
            boxes.append(candidates[keep])
            labels.append(lab[keep])
            matched.append(gt[keep])
        return boxes, labels, matched

    def losses(self, features: dict[str, Tensor], proposals: list[Tensor], image_sizes: list[tuple[int, int]],
               targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        boxes, labels, matched = self._sample(proposals, targets)
        losses: dict[str, Tensor] = {}
        hard, soft = [], []
        for k in range(len(self.ious)):
            cos, deltas = self._run_stage(k, features, boxes, image_sizes)
            all_labels = torch.cat(labels)
            cls = region_classification_loss(cos, all_labels, self.box_predictors[k].classifier, self)
            regression = torch.cat(self.box_coders[k].encode(matched, boxes))
            positive = torch.where(all_labels >= 0)[0]
            box = F.l1_loss(deltas[positive].float(), regression[positive].float(), reduction="sum")
            losses[f"loss_classifier_stage{k}"] = cls.total
            losses[f"loss_box_reg_stage{k}"] = box / max(all_labels.numel(), 1)
            hard.append(cls.hard.detach())
            soft.append(cls.soft.detach())
            if k + 1 < len(self.ious):
                boxes = [b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])] for b in self._refine(k, deltas, boxes, image_sizes)]
                labelled = [self.label(k + 1, b, t) for b, t in zip(boxes, targets)]
                labels, matched = [lab for lab, _ in labelled], [gt for _, gt in labelled]
        losses["parts/hard"] = torch.stack(hard).mean()
        losses["parts/soft"] = torch.stack(soft).mean()
        return losses

    def detections(self, features: dict[str, Tensor], proposals: list[Tensor], proposal_scores: list[Tensor],
                   image_sizes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        boxes, stage_scores = proposals, []
        for k in range(len(self.ious)):
            cos, deltas = self._run_stage(k, features, boxes, image_sizes)
            stage_scores.append(self.box_predictors[k].classifier.scores(cos.float()))
            refined = self._refine(k, deltas, boxes, image_sizes)
            if k + 1 < len(self.ious):
                boxes = refined
        scores = final_scores(stage_scores, torch.cat(proposal_scores).float())
        counts = [len(b) for b in boxes]
        return [select_detections(s, b, self.score_thresh, self.nms_thresh, self.detections_per_img)
                for s, b in zip(scores.split(counts), refined)]
