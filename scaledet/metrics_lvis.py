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

Everything runs on flat arrays (LVIS val, 20k images x 300 detections, in well under a minute): an
(image, category) pair is the key ``image_index * n_categories + category_index``; detections are
sorted by (key, score descending, input order) and ground truth by (key, input order), which is the order
the reference sees them in, so ties break as they do there. The greedy matching runs once per detection
rank over all pairs at once, for the 4 area ranges and 10 IoU thresholds together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scaledet.errors import DataError
from scaledet.evaluation import result_arrays

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e10), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}
FREQUENCIES = ("r", "c", "f")
_AREAS = np.array(list(AREA_RANGES.values()))  # [A, 2]


def lvis_eval(gt: dict[str, Any], detections: Sequence[dict[str, Any]], max_dets: int = 300) -> dict[str, Any]:
    """LVIS box metrics ``AP, AP50, AP75, APs, APm, APl, APr, APc, APf`` (fractions; -1 where undefined)
    and ``per_class`` (name → AP). ``gt`` is an LVIS json dict (images carry ``neg_category_ids`` and
    ``not_exhaustive_category_ids``, categories ``frequency``); ``detections`` a COCO results list."""
    img_ids = np.unique(np.array([img["id"] for img in gt["images"]], dtype=np.int64))
    cat_ids = np.unique(np.array([c["id"] for c in gt["categories"]], dtype=np.int64))
    n_cat = len(cat_ids)
    gt_key, gt_boxes, gt_ignored = _ground_truth(gt["annotations"], img_ids, cat_ids)
    negative = _image_keys(gt["images"], "neg_category_ids", img_ids, cat_ids)
    not_exhaustive = _image_keys(gt["images"], "not_exhaustive_category_ids", img_ids, cat_ids)

    image, category, boxes, scores = result_arrays(detections)
    img_index = _index_of(img_ids, image)
    if (img_index < 0).any():
        raise DataError(f"detection on image {image[img_index < 0][0]}, which is not in the ground truth")
    kept = _top_per_image(img_index, scores, max_dets)
    cat_index = _index_of(cat_ids, category[kept])
    dt_key = img_index[kept] * n_cat + cat_index
    verified = (cat_index >= 0) & np.isin(dt_key, np.union1d(gt_key, negative))
    positive_area = boxes[kept, 2] * boxes[kept, 3] > 0  # the reference leaves out boxes of area 0
    kept, dt_key = kept[verified & positive_area], dt_key[verified & positive_area]
    by_pair = np.lexsort((kept, -scores[kept], dt_key))
    kept, dt_key = kept[by_pair], dt_key[by_pair]
    dt_boxes, dt_scores = boxes[kept], scores[kept]

    matched, on_ignored = _match(dt_key, dt_boxes, gt_key, gt_boxes, gt_ignored)
    dt_area = dt_boxes[:, 2] * dt_boxes[:, 3]
    outside = (dt_area[:, None] < _AREAS[:, 0]) | (dt_area[:, None] > _AREAS[:, 1])  # [N, A]
    outside |= np.isin(dt_key, not_exhaustive)[:, None]
    ignored = on_ignored | (~matched & outside[:, :, None])
    num_gt = np.stack([np.bincount(gt_key[~gt_ignored[:, a]] % n_cat, minlength=n_cat)
                       for a in range(len(_AREAS))], axis=1)  # [K, A]
    by_category = np.lexsort((kept, dt_key // n_cat, -dt_scores, dt_key % n_cat))
    precision = _precision(dt_key[by_category] % n_cat, matched[by_category], ignored[by_category], num_gt)
    return _summarise(precision, gt["categories"], cat_ids.tolist())


def _index_of(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of each value in ``sorted_ids``, -1 where absent."""
    if not len(sorted_ids):
        return np.full(len(values), -1)
    pos = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == values, pos, -1)


def _ground_truth(annotations: Sequence[dict[str, Any]], img_ids: np.ndarray, cat_ids: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys ``[G]``, boxes ``[G, 4]`` and ignore flags per area range ``[G, A]``, sorted by key (stable).

    Annotations of unknown images or categories and of area 0 are left out, as the reference does (its
    ``get_ann_ids`` keeps areas in (0, inf)); they do not make their category positive on the image either."""
    img = _index_of(img_ids, np.array([a["image_id"] for a in annotations], dtype=np.int64))
    cat = _index_of(cat_ids, np.array([a["category_id"] for a in annotations], dtype=np.int64))
    boxes = np.array([a["bbox"] for a in annotations], dtype=float).reshape(-1, 4)
    area = np.array([a.get("area", a["bbox"][2] * a["bbox"][3]) for a in annotations], dtype=float)
    flag = np.array([bool(a.get("ignore", 0)) for a in annotations], dtype=bool)
    known = (img >= 0) & (cat >= 0) & (area > 0)  # as the reference: no boxes of area 0
    key = (img * len(cat_ids) + cat)[known]
    order = np.argsort(key, kind="stable")
    ignored = flag[:, None] | (area[:, None] < _AREAS[:, 0]) | (area[:, None] > _AREAS[:, 1])
    return key[order], boxes[known][order], ignored[known][order]


def _image_keys(images: Sequence[dict[str, Any]], field: str, img_ids: np.ndarray,
                cat_ids: np.ndarray) -> np.ndarray:
    """Sorted unique keys of the (image, category) pairs an image lists in ``field``."""
    lists = [img.get(field, ()) for img in images]
    image = np.repeat(np.array([img["id"] for img in images], dtype=np.int64), [len(v) for v in lists])
    category = np.array([c for v in lists for c in v], dtype=np.int64)
    img, cat = _index_of(img_ids, image), _index_of(cat_ids, category)
    known = (img >= 0) & (cat >= 0)
    return np.unique(img[known] * len(cat_ids) + cat[known])


def _top_per_image(img_index: np.ndarray, scores: np.ndarray, max_dets: int) -> np.ndarray:
    """Indices of the ``max_dets`` highest scoring detections of each image (earlier first on ties); all of
    them when ``max_dets`` is negative, as in the reference."""
    if max_dets < 0:
        return np.arange(len(scores))
    order = np.lexsort((np.arange(len(scores)), -scores, img_index))
    sorted_img = img_index[order]
    first = np.searchsorted(sorted_img, sorted_img, side="left")
    return order[np.arange(len(order)) - first < max_dets]


def _match(dt_key: np.ndarray, dt_boxes: np.ndarray, gt_key: np.ndarray, gt_boxes: np.ndarray,
           gt_ignored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO's greedy matching of every detection, ``(matched, matched to an ignored box)``, each ``[N, A, T]``.

    ``dt_key`` is sorted, and within a key detections are in descending score order. A detection takes the
    free ground truth box of highest IoU (>= the threshold, the last of equal ones), a box that is not
    ignored in preference to one that is. Pairs are processed in buckets of similar ground-truth count,
    padded to the bucket's largest, one detection rank at a time.
    """
    n_a, n_t = len(_AREAS), len(IOU_THRESHOLDS)
    matched = np.zeros((len(dt_key), n_a, n_t), dtype=bool)
    on_ignored = np.zeros_like(matched)
    if not len(dt_key) or not len(gt_key):
        return matched, on_ignored
    starts = np.flatnonzero(np.r_[True, dt_key[1:] != dt_key[:-1]])
    counts = np.diff(np.r_[starts, len(dt_key)])
    g_first = np.searchsorted(gt_key, dt_key[starts], side="left")
    n_g = np.searchsorted(gt_key, dt_key[starts], side="right") - g_first
    bucket = np.ceil(np.log2(np.maximum(n_g, 1))).astype(int)
    for b in np.unique(bucket[n_g > 0]):
        pairs = np.flatnonzero((bucket == b) & (n_g > 0))
        pairs = pairs[np.argsort(-counts[pairs], kind="stable")]
        width = int(n_g[pairs].max())
        slots = np.arange(width)
        real = slots < n_g[pairs, None]  # [P, W]
        gi = np.where(real, g_first[pairs, None] + slots, 0)
        boxes = gt_boxes[gi]  # [P, W, 4]
        ignored = np.moveaxis(gt_ignored[gi], 2, 1)  # [P, A, W]
        taken = np.zeros((len(pairs), n_a, n_t, width), dtype=bool)
        by_count = -counts[pairs]
        for rank in range(int(counts[pairs].max())):
            n = int(np.searchsorted(by_count, -rank, side="left"))  # pairs with more than `rank` detections
            det = starts[pairs[:n]] + rank
            iou = np.where(real[:n], _iou_rows(dt_boxes[det], boxes[:n]), -1.0)  # [n, W]
            free = (iou[:, None, None, :] >= IOU_THRESHOLDS[None, None, :, None]) & ~taken[:n]
            regular = free & ~ignored[:n, :, None, :]
            candidates = np.where(regular.any(axis=3, keepdims=True), regular, free)
            score = np.where(candidates, iou[:, None, None, :], -1.0)
            pick = width - 1 - np.argmax(score[..., ::-1], axis=3)  # the last of equal IoUs
            found = candidates.any(axis=3)  # [n, A, T]
            p, a, t = np.nonzero(found)
            taken[p, a, t, pick[p, a, t]] = True
            matched[det] = found
            on_ignored[det] = found & np.take_along_axis(ignored[:n], pick, axis=2)
    return matched, on_ignored


def _iou_rows(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU ``[n, W]`` of detection ``i`` (``dt [n, 4]``) with its boxes ``gt [n, W, 4]``, xywh, as pycocotools."""
    x0 = np.maximum(dt[:, None, 0], gt[..., 0])
    y0 = np.maximum(dt[:, None, 1], gt[..., 1])
    x1 = np.minimum(dt[:, None, 0] + dt[:, None, 2], gt[..., 0] + gt[..., 2])
    y1 = np.minimum(dt[:, None, 1] + dt[:, None, 3], gt[..., 1] + gt[..., 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (dt[:, 2] * dt[:, 3])[:, None] + gt[..., 2] * gt[..., 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _precision(category: np.ndarray, matched: np.ndarray, ignored: np.ndarray, num_gt: np.ndarray) -> np.ndarray:
    """``[T, R, K, A]`` interpolated precision at the 101 recall thresholds, -1 without ground truth.

    Detections come sorted by category, then descending score (ties: image, then input order).
    """
    n_t, n_r, (n_k, n_a) = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), num_gt.shape
    precision = -np.ones((n_t, n_r, n_k, n_a))
    bounds = np.searchsorted(category, np.arange(n_k + 1))
    for k in np.flatnonzero(num_gt.any(axis=1)):
        lo, hi = bounds[k], bounds[k + 1]
        counted = ~ignored[lo:hi]  # [n, A, T]
        tp = np.cumsum(matched[lo:hi] & counted, axis=0).astype(float)
        fp = np.cumsum(~matched[lo:hi] & counted, axis=0).astype(float)
        prec = tp / (fp + tp + np.spacing(1))
        prec = np.maximum.accumulate(prec[::-1], axis=0)[::-1]
        for a in np.flatnonzero(num_gt[k]):
            recall = tp[:, a, :] / num_gt[k, a]
            for t in range(n_t):
                idx = np.searchsorted(recall[:, t], RECALL_THRESHOLDS, side="left")
                valid = idx < hi - lo
                row = np.zeros(n_r)
                row[valid] = prec[idx[valid], a, t]
                precision[t, :, k, a] = row
    return precision


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
