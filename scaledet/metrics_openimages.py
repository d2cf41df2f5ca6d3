"""OpenImages detection AP@0.5 over the expanded class hierarchy (the OID challenge protocol).

From the published definition (Kuznetsova et al. 2020 §5; TF Object Detection API
``oid_challenge_evaluation`` with ``OpenImagesDetectionChallengeEvaluator``):

1. Hierarchy expansion (``Subcategory`` edges of ``bbox_labels_600_hierarchy.json``; the root is not a
   class): a ground-truth box of class c is also a box of every ancestor of c; image-level positive
   labels expand to ancestors, negative labels to descendants. Detections are expanded to ancestors too
   (``expand_detections=True``), so a "Man" detection also counts for "Person"; pass False for a model
   that already outputs every level.
2. On an image, only *verified* classes are evaluated: image-level positives and negatives and the
   classes of its boxes. Detections of other classes are ignored.
3. Per image and class, detections in descending score order are matched to non-group-of boxes at
   IoU >= 0.5 (each to its highest-IoU box; a box is matched once, later matches are false positives).
   Detections left unmatched whose intersection-over-detection-area with a group-of box is >= 0.5 are
   ignored, and each group-of box hit that way adds one true positive with the highest of their scores.
   A group-of box counts as one ground-truth instance.
4. AP per class: area under the precision/recall curve with all-point (VOC 2010+) interpolation;
   mAP is the mean over classes that have ground truth.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from scaledet.errors import DataError


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
    up, down = _id_relations(gt["categories"], hierarchy)
    images = {img["id"]: img for img in gt["images"]}
    gt_boxes: dict[tuple[int, int], list[tuple[list[float], bool]]] = defaultdict(list)
    verified: dict[int, set[int]] = defaultdict(set)
    for img in images.values():
        for cid in img.get("pos_category_ids", ()):
            verified[img["id"]].update(up.get(cid, {cid}))
        for cid in img.get("neg_category_ids", ()):
            verified[img["id"]].update(down.get(cid, {cid}))
    for ann in gt["annotations"]:
        for cid in up.get(ann["category_id"], {ann["category_id"]}):
            gt_boxes[ann["image_id"], cid].append((ann["bbox"], bool(ann.get("iscrowd", 0))))
            verified[ann["image_id"]].add(cid)
    dts: dict[tuple[int, int], list[tuple[list[float], float]]] = defaultdict(list)
    for det in detections:
        if det["image_id"] not in images:
            raise DataError(f"detection on image {det['image_id']}, which is not in the ground truth")
        labels = up.get(det["category_id"], {det["category_id"]}) if expand_detections else {det["category_id"]}
        for cid in labels & verified[det["image_id"]]:
            dts[det["image_id"], cid].append((det["bbox"], float(det["score"])))
    return _average_precisions(gt["categories"], gt_boxes, dts, iou_threshold)


def _id_relations(categories: Sequence[Mapping[str, Any]],
                  hierarchy: Mapping[str, Any] | None) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
    if hierarchy is None:
        return {}, {}
    ids = {c["mid"]: c["id"] for c in categories if "mid" in c}
    if not ids:
        raise DataError("OpenImages ground truth categories carry no 'mid'; cannot apply the hierarchy")
    ancestors, descendants = hierarchy_relations(hierarchy)

    def to_ids(rel: dict[str, set[str]]) -> dict[int, set[int]]:
        return {ids[m]: {ids[x] for x in rel_set if x in ids} for m, rel_set in rel.items() if m in ids}

    return to_ids(ancestors), to_ids(descendants)


def _average_precisions(categories: Sequence[Mapping[str, Any]],
                        gt_boxes: Mapping[tuple[int, int], list[tuple[list[float], bool]]],
                        dts: Mapping[tuple[int, int], list[tuple[list[float], float]]],
                        iou_threshold: float) -> dict[str, Any]:
    scores: dict[int, list[float]] = defaultdict(list)
    tps: dict[int, list[float]] = defaultdict(list)
    num_gt: dict[int, int] = defaultdict(int)
    for (img, cid), boxes in gt_boxes.items():
        num_gt[cid] += len(boxes)
    for key, dets in dts.items():
        s, tp = match_image_class(gt_boxes.get(key, []), dets, iou_threshold)
        scores[key[1]].extend(s)
        tps[key[1]].extend(tp)
    per_class = {}
    for cat in categories:
        if num_gt[cat["id"]] > 0:
            per_class[cat["name"]] = average_precision(np.array(scores[cat["id"]]), np.array(tps[cat["id"]]),
                                                       num_gt[cat["id"]])
    m_ap = float(np.mean(list(per_class.values()))) if per_class else -1.0
    return {"AP50": m_ap, "per_class": per_class, "num_classes": len(per_class)}


def match_image_class(gt: Sequence[tuple[list[float], bool]], dets: Sequence[tuple[list[float], float]],
                      iou_threshold: float = 0.5) -> tuple[list[float], list[float]]:
    """Scores and TP flags (1.0/0.0) of one image and class, group-of boxes handled (module docstring)."""
    order = sorted(range(len(dets)), key=lambda i: -dets[i][1])
    boxes = np.array([dets[i][0] for i in order], dtype=float).reshape(-1, 4)
    det_scores = np.array([dets[i][1] for i in order], dtype=float)
    single = np.array([b for b, group in gt if not group], dtype=float).reshape(-1, 4)
    group = np.array([b for b, group in gt if group], dtype=float).reshape(-1, 4)
    tp = np.zeros(len(boxes), dtype=bool)
    in_group = np.zeros(len(boxes), dtype=bool)
    if len(single):
        iou = _overlap(boxes, single, over_detection=False)
        best = iou.argmax(axis=1)
        taken = np.zeros(len(single), dtype=bool)
        for i, g in enumerate(best):
            if iou[i, g] >= iou_threshold and not taken[g]:
                tp[i] = taken[g] = True
    group_scores = np.zeros(len(group))
    if len(group):
        ioa = _overlap(boxes, group, over_detection=True)
        best = ioa.argmax(axis=1)
        for i, g in enumerate(best):
            if not tp[i] and ioa[i, g] >= iou_threshold:
                in_group[i] = True
                group_scores[g] = max(group_scores[g], det_scores[i])
    keep = ~in_group
    hit = group_scores > 0
    return (det_scores[keep].tolist() + group_scores[hit].tolist(),
            tp[keep].astype(float).tolist() + [1.0] * int(hit.sum()))


def _overlap(dt: np.ndarray, gt: np.ndarray, over_detection: bool) -> np.ndarray:
    """IoU (or intersection / detection area) ``[D, G]`` of xywh boxes."""
    x0 = np.maximum(dt[:, None, 0], gt[None, :, 0])
    y0 = np.maximum(dt[:, None, 1], gt[None, :, 1])
    x1 = np.minimum(dt[:, None, 0] + dt[:, None, 2], gt[None, :, 0] + gt[None, :, 2])
    y1 = np.minimum(dt[:, None, 1] + dt[:, None, 3], gt[None, :, 1] + gt[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    dt_area = (dt[:, 2] * dt[:, 3])[:, None]
    denom = dt_area if over_detection else dt_area + (gt[:, 2] * gt[:, 3])[None, :] - inter
    return np.where(denom > 0, inter / np.where(denom > 0, denom, 1), 0.0)


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
