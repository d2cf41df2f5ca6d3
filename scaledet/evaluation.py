"""COCO box AP via faster-coco-eval (identical numbers to pycocotools, several times faster)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from scaledet.errors import DataError

log = logging.getLogger(__name__)
logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)  # its summary table is logged at INFO per call

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _ground_truth(gt: str | Path | dict[str, Any]) -> dict[str, Any]:
    if isinstance(gt, dict):
        return copy.deepcopy(gt)
    try:
        return json.loads(Path(gt).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read ground truth {gt}: {error}") from error


def coco_eval(gt: str | Path | dict[str, Any], detections: list[dict[str, Any]]) -> dict[str, Any]:
    """COCO box metrics: ``AP, AP50, AP75, APs, APm, APl`` (fractions, -1 where undefined) and ``per_class``.

    ``gt`` is a COCO json path or dict; ``detections`` a COCO results list (``image_id, category_id,
    bbox [x, y, w, h], score``). No detections at all gives AP 0 (not an error).
    """
    from faster_coco_eval import COCO, COCOeval_faster

    data = _ground_truth(gt)
    data.setdefault("info", {})
    data.setdefault("licenses", [])
    for ann in data.get("annotations", []):
        ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
        ann.setdefault("iscrowd", 0)
    names = {c["id"]: c["name"] for c in data["categories"]}
    if not detections:
        return _empty_result(data, names)
    _check_detections(detections, data)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(data)
        coco_dt = coco_gt.loadRes(copy.deepcopy(list(detections)))
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
    """No detections: AP 0 wherever ground truth exists (size ranges without objects stay -1)."""
    areas = [a["area"] for a in data.get("annotations", []) if not a.get("iscrowd", 0)]
    has = bool(areas)
    ranges = {"APs": (0, 32**2), "APm": (32**2, 96**2), "APl": (96**2, float("inf"))}
    result: dict[str, Any] = {k: 0.0 if has else -1.0 for k in ("AP", "AP50", "AP75")}
    for key, (low, high) in ranges.items():
        result[key] = 0.0 if any(low <= a < high for a in areas) else -1.0
    with_gt = {a["category_id"] for a in data.get("annotations", []) if not a.get("iscrowd", 0)}
    result["per_class"] = {name: 0.0 if cid in with_gt else -1.0 for cid, name in names.items()}
    return result


def _check_detections(detections: list[dict[str, Any]], data: dict[str, Any]) -> None:
    cats = {c["id"] for c in data["categories"]}
    images = {i["id"] for i in data["images"]}
    for det in detections:
        if det.get("category_id") not in cats or det.get("image_id") not in images:
            raise DataError(
                f"detection {det} refers to category {det.get('category_id')} / image {det.get('image_id')} "
                f"not in the ground truth (categories {sorted(cats)[:10]})"
            )
