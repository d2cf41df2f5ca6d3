"""OpenImages detection AP@0.5 over the expanded class hierarchy (the OID challenge protocol).

From the published definition (Kuznetsova et al. 2020 §5; TF Object Detection API
``oid_challenge_evaluation`` with ``OpenImagesDetectionChallengeEvaluator``):

1. Hierarchy expansion (``Subcategory`` edges of ``bbox_labels_600_hierarchy.json``; the root is not a
   class): a ground-truth box of class c is also a box of every ancestor of c; image-level positive
   labels expand to ancestors, negative labels to descendants. Detections are expanded to ancestors too
   (``expand_detections=True``), so a "Man" detection also counts for "Person"; pass False for a model
   that already outputs every level. An ancestor reached along several paths counts once.
2. On an image, only *verified* classes are evaluated: image-level positives and negatives and the
   classes of its boxes. Detections of other classes are ignored, and so are detections of zero width or
   height (the reference drops them as invalid).
3. Per image and class, detections in descending score order are matched to non-group-of boxes at
   IoU >= 0.5 (each to its highest-IoU box; a box is matched once, later matches are false positives).
   Detections left unmatched whose intersection-over-detection-area with a group-of box is >= 0.5 are
   ignored, and each group-of box hit that way adds one true positive with the highest of their scores.
   A group-of box counts as one ground-truth instance.
4. AP per class: area under the precision/recall curve with all-point (VOC 2010+) interpolation;
   mAP is the mean over classes that have ground truth.

Everything runs on flat arrays (OpenImages val, 41k images x 100 detections, in well under a minute): an
(image, class) pair is the key ``image_index * n_classes + class_index``. Since a box is taken by the
first detection (in score order) whose best box it is, matching needs no loop: a detection is a true
positive when it is the first of its pair to have that box as its best match at IoU >= 0.5. Overlaps are
computed as the reference does, on corner coordinates, so the decisions are the same to the last bit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from scaledet.errors import DataError
from scaledet.evaluation import result_arrays


def hierarchy_relations(hierarchy: Mapping[str, Any]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(ancestors, descendants) of every MID under the root, each including the MID itself.

    A MID can sit under several parents; all paths count. The root (``/m/0bl9f``) is left out.
    """
    ancestors: dict[str, set[str]] = defaultdict(set)

    def visit(node: Mapping[str, Any], path: tuple[str, ...]) -> None:
        mid = node["LabelName"]
        ancestors[mid].update(path + (mid,))
        for child in node.get("Subcategory", ()):
            visit(child, path + (mid,))

    for child in hierarchy.get("Subcategory", ()):
        visit(child, ())
    descendants: dict[str, set[str]] = defaultdict(set)
    for mid, above in ancestors.items():
        for parent in above:
            descendants[parent].add(mid)
    return dict(ancestors), dict(descendants)


def openimages_eval(gt: Mapping[str, Any], detections: Sequence[Mapping[str, Any]],
                    hierarchy: Mapping[str, Any] | None, iou_threshold: float = 0.5,
                    expand_detections: bool = True) -> dict[str, Any]:
    """``{"AP50": mAP, "per_class": {name: AP}, "num_classes": n}`` (classes with ground truth only).

    ``gt`` is a COCO dict as ``harness.catalog.openimages`` writes it: categories carry ``mid``, images
    ``pos_category_ids``/``neg_category_ids`` (verified image-level labels), annotations ``iscrowd`` =
    group-of. ``detections`` are COCO results (``image_id, category_id, bbox xywh, score``).
    """
    categories = gt["categories"]
    index = _Index(np.unique(np.array([img["id"] for img in gt["images"]], dtype=np.int64)),
                   np.array([c["id"] for c in categories], dtype=np.int64))
    up, down = _relations(categories, hierarchy)
    gt_key, gt_boxes, gt_group = _ground_truth(gt["annotations"], index, up)
    verified = np.unique(np.concatenate([gt_key, _label_keys(gt["images"], "pos_category_ids", up, index),
                                         _label_keys(gt["images"], "neg_category_ids", down, index)]))
    dt_key, dt_boxes, dt_scores = _detections(detections, index, up if expand_detections else None, verified)

    tp = _first_matches(dt_key, dt_boxes, gt_key[~gt_group], gt_boxes[~gt_group], iou_threshold)
    group_key = gt_key[gt_group]
    best, overlap = _best_overlap(dt_key, dt_boxes, group_key, gt_boxes[gt_group], over_detection=True)
    in_group = ~tp & (overlap >= iou_threshold)
    group_scores = np.zeros(len(group_key))
    np.maximum.at(group_scores, best[in_group], dt_scores[in_group])
    hit = group_scores > 0

    n_cls = index.n_classes
    entry_cls = np.concatenate([dt_key[~in_group] % n_cls, group_key[hit] % n_cls])
    entry_scores = np.concatenate([dt_scores[~in_group], group_scores[hit]])
    entry_tp = np.concatenate([tp[~in_group], np.ones(int(hit.sum()), dtype=bool)]).astype(float)
    num_gt = np.bincount(gt_key % n_cls, minlength=n_cls) if n_cls else np.zeros(0, dtype=int)
    return _average_precisions(categories, entry_cls, entry_scores, entry_tp, num_gt, index.by_id)


@dataclass(frozen=True)
class _Index:
    """Image ids (sorted) and category ids (in the categories' order) to positions; a pair's key is
    ``image position * n_classes + class position``."""

    img_ids: np.ndarray
    cat_ids: np.ndarray

    @property
    def n_classes(self) -> int:
        return len(self.cat_ids)

    @cached_property
    def by_id(self) -> np.ndarray:
        return np.argsort(self.cat_ids, kind="stable")

    def image(self, ids: np.ndarray) -> np.ndarray:
        return _index_of(self.img_ids, ids)

    def category(self, ids: np.ndarray) -> np.ndarray:
        return _index_of(self.cat_ids, ids, self.by_id)


def _index_of(ids: np.ndarray, values: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Position of each value in ``ids`` (sorted, or sorted by ``order``), -1 where absent."""
    if not len(ids):
        return np.full(len(values), -1)
    sorted_ids = ids if order is None else ids[order]
    pos = np.minimum(np.searchsorted(sorted_ids, values), len(ids) - 1)
    found = sorted_ids[pos] == values
    return np.where(found, pos if order is None else order[pos], -1)


def _ground_truth(annotations: Sequence[Mapping[str, Any]], index: _Index, up: list[np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys, corner boxes and group-of flags of the boxes expanded to their ancestors, sorted by key
    (stable: a pair's boxes in annotation order); boxes of unknown images or classes left out."""
    img = index.image(np.array([a["image_id"] for a in annotations], dtype=np.int64))
    cls = index.category(np.array([a["category_id"] for a in annotations], dtype=np.int64))
    boxes = _corners(np.array([a["bbox"] for a in annotations], dtype=float).reshape(-1, 4))
    group = np.array([bool(a.get("iscrowd", 0)) for a in annotations], dtype=bool)
    known = np.flatnonzero((img >= 0) & (cls >= 0))
    source, cls = _expand(cls[known], up)
    rows = known[source]
    key = img[rows] * index.n_classes + cls
    order = np.argsort(key, kind="stable")
    return key[order], boxes[rows[order]], group[rows[order]]


def _detections(detections: Sequence[Mapping[str, Any]], index: _Index, up: list[np.ndarray] | None,
                verified: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys, corner boxes and scores of the evaluated detections (expanded along ``up`` unless None, of
    verified pairs, not empty), sorted by key, then descending score, then input order."""
    image, category, boxes, scores = result_arrays(detections)
    img = index.image(image)
    if (img < 0).any():
        raise DataError(f"detection on image {image[img < 0][0]}, which is not in the ground truth")
    boxes = _corners(boxes)
    cls = index.category(category)
    kept = np.flatnonzero((boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3]) & (cls >= 0))
    if up is not None:
        source, cls = _expand(cls[kept], up)
        kept = kept[source]
    else:
        cls = cls[kept]
    key = img[kept] * index.n_classes + cls
    evaluated = np.isin(key, verified)
    kept, key = kept[evaluated], key[evaluated]
    order = np.lexsort((kept, -scores[kept], key))
    return key[order], boxes[kept[order]], scores[kept[order]]


def _relations(categories: Sequence[Mapping[str, Any]], hierarchy: Mapping[str, Any] | None
               ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per class index, the class indices of its ancestors and of its descendants, itself included."""
    itself = [np.array([k]) for k in range(len(categories))]
    if hierarchy is None:
        return itself, itself
    index = {c["mid"]: k for k, c in enumerate(categories) if "mid" in c}
    if not index:
        raise DataError("OpenImages ground truth categories carry no 'mid'; cannot apply the hierarchy")
    ancestors, descendants = hierarchy_relations(hierarchy)

    def related(rel: dict[str, set[str]]) -> list[np.ndarray]:
        out = list(itself)
        for mid, k in index.items():
            if mid in rel:
                out[k] = np.array(sorted(index[m] for m in rel[mid] if m in index))
        return out

    return related(ancestors), related(descendants)


def _expand(cls: np.ndarray, related: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each entry once per related class: ``(index of the entry, related class)``."""
    counts = np.array([len(r) for r in related], dtype=np.int64)
    starts = np.r_[0, np.cumsum(counts)[:-1]] if len(counts) else counts
    flat = np.concatenate(related) if related else np.zeros(0, dtype=np.int64)
    per_entry = counts[cls]
    source = np.repeat(np.arange(len(cls)), per_entry)
    offset = np.arange(len(source)) - np.repeat(np.cumsum(per_entry) - per_entry, per_entry)
    return source, flat[np.repeat(starts[cls], per_entry) + offset]


def _label_keys(images: Sequence[Mapping[str, Any]], field: str, related: list[np.ndarray],
                index: _Index) -> np.ndarray:
    """Keys of the (image, class) pairs an image-level label list verifies, expanded along ``related``."""
    lists = [img.get(field) or () for img in images]
    img = index.image(np.repeat(np.array([img["id"] for img in images], dtype=np.int64), [len(v) for v in lists]))
    cls = index.category(np.array([c for v in lists for c in v], dtype=np.int64))
    known = (img >= 0) & (cls >= 0)
    source, cls = _expand(cls[known], related)
    return img[known][source] * index.n_classes + cls


def _corners(xywh: np.ndarray) -> np.ndarray:
    """``[x0, y0, x1, y1]`` of ``[x, y, w, h]`` boxes."""
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def _best_overlap(dt_key: np.ndarray, dt_boxes: np.ndarray, gt_key: np.ndarray, gt_boxes: np.ndarray,
                  over_detection: bool) -> tuple[np.ndarray, np.ndarray]:
    """For each detection, the index into ``gt_*`` of its best box among its pair's (the first of equal
    ones) and that overlap: IoU, or intersection over the detection's area. -1 and -inf without boxes.

    ``gt_key`` is sorted. Detections are handled in buckets by their pair's box count, padded to it.
    """
    best = np.full(len(dt_key), -1)
    overlap = np.full(len(dt_key), -np.inf)
    first = np.searchsorted(gt_key, dt_key, side="left")
    count = np.searchsorted(gt_key, dt_key, side="right") - first
    bucket = np.ceil(np.log2(np.maximum(count, 1))).astype(int)
    for b in np.unique(bucket[count > 0]):
        rows = np.flatnonzero((bucket == b) & (count > 0))
        width = int(count[rows].max())
        slots = np.arange(width)
        real = slots < count[rows, None]
        gi = np.where(real, first[rows, None] + slots, 0)
        value = np.where(real, _overlaps(dt_boxes[rows], gt_boxes[gi], over_detection), -np.inf)
        pick = np.argmax(value, axis=1)
        best[rows] = gi[np.arange(len(rows)), pick]
        overlap[rows] = value[np.arange(len(rows)), pick]
    return best, overlap


def _overlaps(dt: np.ndarray, gt: np.ndarray, over_detection: bool) -> np.ndarray:
    """``[n, W]`` IoU (or intersection / detection area) of detection ``i`` with its boxes ``gt[i]``, on
    corner coordinates, with the reference's operations (``np_box_ops``: heights times widths)."""
    heights = np.maximum(0.0, np.minimum(dt[:, None, 3], gt[..., 3]) - np.maximum(dt[:, None, 1], gt[..., 1]))
    widths = np.maximum(0.0, np.minimum(dt[:, None, 2], gt[..., 2]) - np.maximum(dt[:, None, 0], gt[..., 0]))
    inter = heights * widths
    dt_area = ((dt[:, 3] - dt[:, 1]) * (dt[:, 2] - dt[:, 0]))[:, None]
    if over_detection:
        return inter / dt_area
    return inter / (dt_area + (gt[..., 3] - gt[..., 1]) * (gt[..., 2] - gt[..., 0]) - inter)


def _first_matches(dt_key: np.ndarray, dt_boxes: np.ndarray, gt_key: np.ndarray, gt_boxes: np.ndarray,
                   iou_threshold: float) -> np.ndarray:
    """True positives: detections (sorted by key, then descending score) that are the first of their pair
    to have their best box at IoU >= the threshold."""
    best, iou = _best_overlap(dt_key, dt_boxes, gt_key, gt_boxes, over_detection=False)
    candidates = np.flatnonzero(iou >= iou_threshold)
    _, first = np.unique(best[candidates], return_index=True)
    tp = np.zeros(len(dt_key), dtype=bool)
    tp[candidates[first]] = True
    return tp


def _average_precisions(categories: Sequence[Mapping[str, Any]], entry_cls: np.ndarray, scores: np.ndarray,
                        tp: np.ndarray, num_gt: np.ndarray, by_id: np.ndarray) -> dict[str, Any]:
    """AP per class with ground truth; mAP as the reference's ``np.nanmean`` over classes in id order."""
    order = np.lexsort((-scores, entry_cls))
    bounds = np.searchsorted(entry_cls[order], np.arange(len(categories) + 1))
    ap = np.full(len(categories), np.nan)
    for k in np.flatnonzero(num_gt):
        rows = order[bounds[k]:bounds[k + 1]]
        ap[k] = average_precision(scores[rows], tp[rows], int(num_gt[k]))
    per_class = {categories[k]["name"]: float(ap[k]) for k in range(len(categories)) if num_gt[k] > 0}
    m_ap = float(np.nanmean(ap[by_id])) if per_class else -1.0
    return {"AP50": m_ap, "per_class": per_class, "num_classes": len(per_class)}


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """All-point interpolated AP of detections (``tp`` 1/0) against ``num_gt`` instances."""
    order = np.argsort(-scores, kind="stable")
    tp = tp[order].astype(float)
    cum_tp, cum_fp = np.cumsum(tp), np.cumsum(1.0 - tp)
    precision = cum_tp / np.maximum(cum_tp + cum_fp, np.finfo(float).eps)
    recall = cum_tp / num_gt
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.where(recall[1:] != recall[:-1])[0] + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))
