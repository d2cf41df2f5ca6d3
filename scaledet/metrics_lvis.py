"""LVIS federated box AP (Gupta et al. 2019), as the ``lvis`` API (lvis-dataset/lvis-api v0.5.3) computes it.

The ``lvis`` package on PyPI (0.5.3) uses ``np.float`` and fails on numpy >= 1.24, so the protocol is
implemented here from its definition and checked against the package (with that alias restored) in the
tests. The federated rules:

- at most ``max_dets`` (300) detections per image, the highest scoring, before anything else;
- on an image, a category is evaluated only if it is *verified*: it has ground truth there (positive) or
  is in the image's ``neg_category_ids``; detections of other categories are dropped;
- an unmatched detection of a category in the image's ``not_exhaustive_category_ids`` is ignored (not a
  false positive);
- per category: COCO matching at IoU 0.50:0.95, 101-point interpolated precision; AP is the mean over
  categories with ground truth; APr/APc/APf over the categories of frequency r/c/f; APs/m/l by area.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scaledet.errors import DataError

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e10), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}
FREQUENCIES = ("r", "c", "f")


@dataclass
class _ImageCategoryEval:
    scores: np.ndarray  # [D], sorted descending
    matched: np.ndarray  # [T, D] bool
    ignored: np.ndarray  # [T, D] bool
    gt_ignored: np.ndarray  # [G] bool


def box_iou_xywh(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU ``[D, G]`` of boxes ``[x, y, w, h]`` (pycocotools' definition, no +1)."""
    if len(dt) == 0 or len(gt) == 0:
        return np.zeros((len(dt), len(gt)))
    x0 = np.maximum(dt[:, None, 0], gt[None, :, 0])
    y0 = np.maximum(dt[:, None, 1], gt[None, :, 1])
    x1 = np.minimum(dt[:, None, 0] + dt[:, None, 2], gt[None, :, 0] + gt[None, :, 2])
    y1 = np.minimum(dt[:, None, 1] + dt[:, None, 3], gt[None, :, 1] + gt[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (dt[:, 2] * dt[:, 3])[:, None] + (gt[:, 2] * gt[:, 3])[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def lvis_eval(gt: dict[str, Any], detections: Sequence[dict[str, Any]], max_dets: int = 300) -> dict[str, Any]:
    """LVIS box metrics ``AP, AP50, AP75, APs, APm, APl, APr, APc, APf`` (fractions; -1 where undefined)
    and ``per_class`` (name → AP). ``gt`` is an LVIS json dict (images carry ``neg_category_ids`` and
    ``not_exhaustive_category_ids``, categories ``frequency``); ``detections`` a COCO results list."""
    images = {img["id"]: img for img in gt["images"]}
    cat_ids = sorted(c["id"] for c in gt["categories"])
    gts: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    positives: dict[int, set[int]] = defaultdict(set)
    for ann in gt["annotations"]:
        gts[ann["image_id"], ann["category_id"]].append(ann)
        positives[ann["image_id"]].add(ann["category_id"])
    dts: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for det in _limit_per_image(detections, max_dets, images):
        img, cat = det["image_id"], det["category_id"]
        if cat in positives[img] or cat in images[img].get("neg_category_ids", ()):
            dts[img, cat].append(det)
    precision = -np.ones((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(cat_ids), len(AREA_RANGES)))
    for k, cat in enumerate(cat_ids):
        keys = [(img, cat) for img in sorted(images) if (img, cat) in gts or (img, cat) in dts]
        for a, area in enumerate(AREA_RANGES.values()):
            evals = [_evaluate(gts.get(key, []), dts.get(key, []), area,
                               cat in images[key[0]].get("not_exhaustive_category_ids", ())) for key in keys]
            curve = _precision_curve(evals)
            if curve is not None:
                precision[:, :, k, a] = curve
    return _summarise(precision, gt["categories"], cat_ids)


def _limit_per_image(detections: Sequence[dict[str, Any]], max_dets: int,
                     images: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    per_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for det in detections:
        if det["image_id"] not in images:
            raise DataError(f"detection on image {det['image_id']}, which is not in the ground truth")
        per_image[det["image_id"]].append(det)
    kept = []
    for dets in per_image.values():
        kept.extend(dets if len(dets) <= max_dets else sorted(dets, key=lambda d: d["score"], reverse=True)[:max_dets])
    return kept


def _evaluate(gt: list[dict[str, Any]], dt: list[dict[str, Any]], area: tuple[float, float],
              not_exhaustive: bool) -> _ImageCategoryEval:
    lo, hi = area
    gt_area = np.array([g.get("area", g["bbox"][2] * g["bbox"][3]) for g in gt], dtype=float)
    gt_ignore = np.array([bool(g.get("ignore", 0)) for g in gt], dtype=bool) | (gt_area < lo) | (gt_area > hi)
    order = np.argsort(gt_ignore, kind="mergesort")
    gt_boxes = np.array([g["bbox"] for g in gt], dtype=float).reshape(-1, 4)[order]
    gt_ignore = gt_ignore[order]
    dt_order = np.argsort([-d["score"] for d in dt], kind="mergesort")
    dt = [dt[i] for i in dt_order]
    dt_boxes = np.array([d["bbox"] for d in dt], dtype=float).reshape(-1, 4)
    ious = box_iou_xywh(dt_boxes, gt_boxes)
    n_t, n_d, n_g = len(IOU_THRESHOLDS), len(dt), len(gt)
    matched = np.zeros((n_t, n_d), dtype=bool)
    ignored = np.zeros((n_t, n_d), dtype=bool)
    gt_matched = np.zeros((n_t, n_g), dtype=bool)
    for t, threshold in enumerate(IOU_THRESHOLDS if n_g and n_d else ()):
        for d in range(n_d):
            best, m = min(threshold, 1 - 1e-10), -1
            for g in range(n_g):
                if gt_matched[t, g]:
                    continue
                if m > -1 and not gt_ignore[m] and gt_ignore[g]:
                    break
                if ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m == -1:
                continue
            ignored[t, d] = gt_ignore[m]
            matched[t, d] = True
            gt_matched[t, m] = True
    dt_area = dt_boxes[:, 2] * dt_boxes[:, 3]
    outside = (dt_area < lo) | (dt_area > hi) | not_exhaustive
    ignored |= ~matched & outside[None, :]
    return _ImageCategoryEval(np.array([d["score"] for d in dt], dtype=float), matched, ignored, gt_ignore)


def _precision_curve(evals: list[_ImageCategoryEval]) -> np.ndarray | None:
    """``[T, R]`` interpolated precision at the 101 recall thresholds, or None without ground truth."""
    gt_ignore = np.concatenate([e.gt_ignored for e in evals]) if evals else np.zeros(0, dtype=bool)
    num_gt = int(np.count_nonzero(~gt_ignore))
    if num_gt == 0:
        return None
    scores = np.concatenate([e.scores for e in evals])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([e.matched for e in evals], axis=1)[:, order]
    ignored = np.concatenate([e.ignored for e in evals], axis=1)[:, order]
    tp = np.cumsum(matched & ~ignored, axis=1, dtype=float)
    fp = np.cumsum(~matched & ~ignored, axis=1, dtype=float)
    curve = np.zeros((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)))
    for t in range(len(IOU_THRESHOLDS)):
        recall = tp[t] / num_gt
        prec = tp[t] / (tp[t] + fp[t] + np.spacing(1))
        prec = np.maximum.accumulate(prec[::-1])[::-1] if len(prec) else prec
        idx = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
        valid = idx < len(prec)
        curve[t, valid] = prec[idx[valid]]
    return curve


def _summarise(precision: np.ndarray, categories: list[dict[str, Any]], cat_ids: list[int]) -> dict[str, Any]:
    def mean(values: np.ndarray) -> float:
        values = values[values > -1]
        return float(np.mean(values)) if values.size else -1.0

    by_id = {c["id"]: c for c in categories}
    result: dict[str, Any] = {"AP": mean(precision[..., 0]), "AP50": mean(precision[0, ..., 0]),
                              "AP75": mean(precision[5, ..., 0])}
    for a, name in enumerate(("APs", "APm", "APl"), start=1):
        result[name] = mean(precision[..., a])
    for freq in FREQUENCIES:
        idx = [k for k, cid in enumerate(cat_ids) if by_id[cid].get("frequency") == freq]
        result[f"AP{freq}"] = mean(precision[:, :, idx, 0])
    result["per_class"] = {by_id[cid]["name"]: mean(precision[:, :, k, 0]) for k, cid in enumerate(cat_ids)}
    return result
