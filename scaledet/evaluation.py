"""COCO box AP via faster-coco-eval (identical numbers to pycocotools, several times faster)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from scaledet import validation
from scaledet.errors import DataError

log = logging.getLogger(__name__)
logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)  # its summary table is logged at INFO per call

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# exact types whose values validation.is_number accepts once finite (np.float64 is a float subclass)
_NUMBER_TYPES = frozenset({int, float, np.float64})


def _ground_truth(gt: str | Path | dict[str, Any]) -> tuple[dict[str, Any], str]:
    if not isinstance(gt, str | Path):
        return gt, "ground truth"  # a dict, or anything else check_layout refuses
    try:
        return json.loads(Path(gt).read_text()), str(gt)
    except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read ground truth {gt}: {error}") from error


def _checked_ground_truth(data: Any, where: str) -> dict[str, Any]:
    """The minimal COCO dict the evaluator needs, checked (``DataError`` naming the id and field).

    Annotations are renumbered 1..n in order (ids do not change the metrics; duplicates would); ground
    truth boxes with negative width or height are dropped and counted (they cannot be matched).
    """
    validation.check_layout(data, where)
    names = validation.check_categories(data["categories"], where)
    images = validation.check_images(data["images"], where, need_file_name=False)
    checked = _bulk_annotations(data["annotations"], images, names)
    if checked is None:  # something needs a closer look: one by one, the first problem is the error
        checked = []
        for number, ann in enumerate(data["annotations"]):
            bbox = validation.check_annotation(ann, number, where, images, names)
            checked.append((ann["image_id"], ann["category_id"], bbox,
                            float(ann.get("area", bbox[2] * bbox[3])), int(ann.get("iscrowd", 0))))
    annotations = []
    for image_id, category_id, bbox, area, iscrowd in checked:
        if bbox[2] < 0 or bbox[3] < 0:
            continue
        annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category_id,
                            "bbox": bbox, "area": area, "iscrowd": iscrowd})
    negative = len(checked) - len(annotations)
    if negative:
        log.warning("%s: %d ground-truth boxes with negative width or height dropped from the evaluation",
                    where, negative)
    return {"info": {}, "licenses": [], "images": [{"id": i} for i in images],
            "categories": [{"id": c, "name": n} for c, n in names.items()], "annotations": annotations}


def _bulk_annotations(annotations: list[Any], images: Mapping[int, Any], names: Mapping[int, str]
                      ) -> list[tuple[int, int, list[float], float, int]] | None:
    """``(image_id, category_id, bbox, area, iscrowd)`` of each annotation, checked in bulk; None when any
    annotation is not plainly valid (then ``validation.check_annotation`` finds and names the problem)."""
    fields = _bulk_fields(annotations)
    if fields is None:
        return None
    image_ids, category_ids, boxes = fields
    has_area = np.array(["area" in a for a in annotations], dtype=bool)
    given_areas = _bulk_numbers([a["area"] for a in annotations if "area" in a])
    crowd = [a.get("iscrowd", 0) for a in annotations]
    if (boxes is None or given_areas is None or not _plain_ids(image_ids, images)
            or not _plain_ids(category_ids, names) or not {type(v) for v in crowd} <= {int}
            or not set(crowd) <= {0, 1}):
        return None
    with np.errstate(over="ignore"):  # huge boxes: inf, as Python's float product gives
        areas = boxes[:, 2] * boxes[:, 3]
    areas[has_area] = given_areas
    return list(zip(image_ids, category_ids, boxes.tolist(), areas.tolist(), crowd))


def _bulk_fields(records: Sequence[Any]) -> tuple[list[Any], list[Any], np.ndarray | None] | None:
    """Image ids, category ids and boxes (:func:`_bulk_boxes`) of COCO annotation or detection ``records``; None
    when one is not a dict or lacks one of those keys."""
    if not all(type(r) is dict for r in records):
        return None
    try:
        return (list(map(itemgetter("image_id"), records)), list(map(itemgetter("category_id"), records)),
                _bulk_boxes(list(map(itemgetter("bbox"), records))))
    except KeyError:
        return None


def _plain_ids(values: list[Any], known: Collection[int]) -> bool:
    """Every value an ``int`` (not a bool or another subclass) that is in ``known``."""
    return {type(v) for v in values} <= {int} and set(values).issubset(known)


def _bulk_numbers(values: list[Any]) -> np.ndarray | None:
    """The values as floats when every one is a finite int or float, else None."""
    if not {type(v) for v in values} <= _NUMBER_TYPES:
        return None
    try:
        out = np.array(values, dtype=float)
    except OverflowError:  # an int beyond float range: not a finite number
        return None
    return out if np.isfinite(out).all() else None


def _bulk_boxes(boxes: list[Any]) -> np.ndarray | None:
    """``[N, 4]`` floats when every box is a list or tuple of 4 finite numbers, else None."""
    if not {type(b) for b in boxes} <= {list, tuple} or not {len(b) for b in boxes} <= {4}:
        return None
    flat = _bulk_numbers(list(chain.from_iterable(boxes)))
    return None if flat is None else flat.reshape(-1, 4)


def result_arrays(detections: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(image_id, category_id, bbox, score)`` of a COCO results list as arrays ``[N]`` int64, ``[N]`` int64,
    ``[N, 4]`` float (xywh) and ``[N]`` float, without a Python object per detection (LVIS and OpenImages
    scoring). A record without these fields, or a bbox that is not 4 numbers, is a ``DataError``."""
    n = len(detections)
    try:
        boxes = list(map(itemgetter("bbox"), detections))
        if {len(b) for b in boxes} - {4}:
            raise ValueError("a bbox is not [x, y, w, h]")
        return (np.fromiter(map(itemgetter("image_id"), detections), np.int64, n),
                np.fromiter(map(itemgetter("category_id"), detections), np.int64, n),
                np.fromiter(chain.from_iterable(boxes), float, 4 * n).reshape(n, 4),
                np.fromiter(map(itemgetter("score"), detections), float, n))
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise DataError("detections must be COCO results with image_id, category_id, bbox [x, y, w, h] and "
                        f"score: {type(error).__name__}: {error}") from error


def coco_eval(gt: str | Path | dict[str, Any], detections: list[dict[str, Any]]) -> dict[str, Any]:
    """COCO box metrics: ``AP, AP50, AP75, APs, APm, APl`` (fractions, -1 where undefined) and ``per_class``.

    ``gt`` is a COCO json path or dict; ``detections`` a COCO results list (``image_id, category_id,
    bbox [x, y, w, h], score``). No detections at all gives AP 0 (not an error).
    """
    from faster_coco_eval import COCO, COCOeval_faster

    data = _checked_ground_truth(*_ground_truth(gt))
    names = {c["id"]: c["name"] for c in data["categories"]}
    results = _checked_detections(detections, data)
    if not results:
        return _empty_result(data, names)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(data)
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval_faster(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [float(s) for s in evaluator.stats[: len(STAT_NAMES)]]
    result: dict[str, Any] = dict(zip(STAT_NAMES, stats))
    result["per_class"] = _per_class(evaluator.eval["precision"], evaluator.params.catIds, names)
    return result


def _per_class(precision: np.ndarray, cat_ids: list[int], names: dict[int, str]) -> dict[str, float]:
    """AP@[.5:.95] per category (area "all", maxDets 100), -1 for a category without ground truth."""
    out = {}
    for k, cat_id in enumerate(cat_ids):
        p = precision[:, :, k, 0, -1]
        valid = p[p > -1]
        out[names[cat_id]] = float(valid.mean()) if valid.size else -1.0
    return out


def _empty_result(data: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    """No detections: AP 0 wherever ground truth exists (size ranges without objects stay -1).

    The size ranges are COCO's, closed at both ends as the evaluator has them: an area of exactly 32² is small
    and medium, 96² medium and large."""
    areas = [a["area"] for a in data.get("annotations", []) if not a.get("iscrowd", 0)]
    has = bool(areas)
    ranges = {"APs": (0, 32**2), "APm": (32**2, 96**2), "APl": (96**2, float("inf"))}
    result: dict[str, Any] = {k: 0.0 if has else -1.0 for k in ("AP", "AP50", "AP75")}
    for key, (low, high) in ranges.items():
        result[key] = 0.0 if any(low <= a <= high for a in areas) else -1.0
    with_gt = {a["category_id"] for a in data.get("annotations", []) if not a.get("iscrowd", 0)}
    result["per_class"] = {name: 0.0 if cid in with_gt else -1.0 for cid, name in names.items()}
    return result


def _checked_detections(detections: Any, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Clean copies of the detections; a malformed one is a ``DataError`` naming it and the field."""
    if not isinstance(detections, list | tuple):
        raise DataError(f"detections must be a list of COCO results, got {type(detections).__name__}")
    cats = {c["id"] for c in data["categories"]}
    images = {i["id"] for i in data["images"]}
    fast = _bulk_detections(detections, cats, images)
    if fast is not None:
        return fast
    out = []
    for number, det in enumerate(detections):
        where = f"detection {number}"
        if not isinstance(det, dict):
            raise DataError(f"{where}: expected an object with image_id, category_id, bbox, score, got {det!r:.200}")
        image_id, category_id = det.get("image_id"), det.get("category_id")
        if not (validation.is_id(image_id) and validation.is_id(category_id)
                and category_id in cats and image_id in images):
            raise DataError(
                f"{where} refers to category {det.get('category_id')!r} / image {det.get('image_id')!r} "
                f"not in the ground truth (categories {sorted(cats)[:10]})"
            )
        bbox = validation.check_bbox(det.get("bbox"), where)
        if bbox[2] < 0 or bbox[3] < 0:
            raise DataError(f"{where}: field 'bbox' has a negative width or height: {bbox}")
        if not validation.is_number(det.get("score")):
            raise DataError(f"{where}: field 'score' must be a finite number, got {det.get('score')!r}")
        out.append({"image_id": det["image_id"], "category_id": det["category_id"], "bbox": bbox,
                    "score": float(det["score"])})
    return out


def _bulk_detections(detections: list[Any] | tuple[Any, ...], cats: set[int], images: set[int]
                     ) -> list[dict[str, Any]] | None:
    """The clean copies :func:`_checked_detections` makes, checked in bulk (no Python call per detection);
    None when any detection is not plainly valid (then the one-by-one check names the problem)."""
    fields = _bulk_fields(detections)
    if fields is None:
        return None
    try:
        scores = _bulk_numbers(list(map(itemgetter("score"), detections)))
    except KeyError:
        return None
    image_ids, category_ids, boxes = fields
    if (boxes is None or scores is None or (boxes[:, 2:] < 0).any()
            or not _plain_ids(image_ids, images) or not _plain_ids(category_ids, cats)):
        return None
    return [{"image_id": i, "category_id": c, "bbox": b, "score": s}
            for i, c, b, s in zip(image_ids, category_ids, boxes.tolist(), scores.tolist())]
