"""Scoring time of LVIS federated AP, OpenImages AP50 and COCO AP on seeded synthetic inputs at full size.

    python benchmarks/bench_metrics.py [--scale 1.0] [--reference-scale 0.05] [--cases coco lvis openimages]
                                       [--coco-images 1500] [--coco-repeats 5] [--no-reference] [--seed 0]

- ``lvis``: 20,000 images x 1,203 categories (337 r / 461 c / 405 f), ~7 boxes in ~3 positive categories
  per image, ~8 ``neg_category_ids`` and some ``not_exhaustive_category_ids`` per image, 300 detections per
  image (310 on every tenth image, so the 300 cap bites), scores rounded to float32 so ties occur as with a
  real detector. Scored by ``scaledet.metrics_lvis.lvis_eval``.
- ``openimages``: 41,620 images (v6 validation's count) x 500 classes in a random tree of depth <= 5
  written as ``bbox_labels_600_hierarchy.json`` is (LabelName/Subcategory under the root ``/m/0bl9f``),
  ~6 boxes per image of which ~8 % group-of, image-level positive and negative labels, ~100 detections
  per image (leaf-level labels; expanded to ancestors by the scorer). Scored by
  ``scaledet.metrics_openimages.openimages_eval``.
- ``coco``: 1,500 images x 80 categories (COCO's ids), ~11k boxes, ~40k detections: ``scaledet.evaluation
  .coco_eval`` against pycocotools and faster-coco-eval alone, each given fresh copies of the same inputs
  (made outside the timer: both evaluators write into the detection records), median of the repeats, each
  evaluator first in turn. Ours must equal faster-coco-eval exactly (stats and per-class AP) and pycocotools
  to 1e-15 (faster-coco-eval's precision is 1.0 where pycocotools' is 1 - 2**-52; on this case the two agree
  exactly, on smaller ones a mean can differ in its last bit).

The references are far slower (per image and category Python loops), so they run on a smaller shared case
(``--reference-scale``, 5 % by default: 1,000 LVIS images, 2,081 OpenImages images) next to ours, and the
results must be identical (every metric, every class, exactly). The references:

- LVIS: the ``lvis`` package (lvis-api 0.5.3, a dev dependency), with the ``np.float`` alias restored;
- OpenImages: the TF Object Detection API as published on PyPI (``pip install --no-deps
  object-detection==0.0.3``, a 2019 snapshot; its box matching is the current one), its numpy evaluator
  ``OpenImagesDetectionChallengeEvaluator`` (group-of weight 1) and its hierarchy expansion
  (``oid_hierarchical_labels_expansion``, applied to boxes, labels and detections), run with stand-ins for
  the parts that need TensorFlow, protobuf or Python 2 (``tensorflow``, ``label_map_util``, ``unicode``,
  ``dict.iteritems``, ``np.float``/``np.NAN``). Scores are float64 here: on tied scores its order is
  numpy's unstable quicksort, which no stable order reproduces.

Every case runs in its own subprocess, so each peak is its own: peak RSS is ``VmHWM`` from
``/proc/self/status``, reset (``/proc/self/clear_refs``) once the inputs are built, so it is the peak while
scoring, inputs included ("inputs" is the resident size before scoring: the detections as Python dicts).
A mismatch is printed loudly and the script exits non-zero. Writes benchmarks/results/bench_metrics.json.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.metadata
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

LVIS_IMAGES, LVIS_FREQUENCIES = 20_000, {"r": 337, "c": 461, "f": 405}
OPENIMAGES_IMAGES, OPENIMAGES_CLASSES, OPENIMAGES_ROOT = 41_620, 500, "/m/0bl9f"
COCO_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
LVIS_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
# faster-coco-eval's precision is tp / (tp + fp) where pycocotools adds np.spacing(1) to the denominator: 1.0
# against 1 - 2**-52, so a mean over such entries can differ in its last bit
COCO_ROUNDING = 1e-15


# ----------------------------------------------------------------------------------------------- inputs


def _boxes(rng: np.random.Generator, n: int, width: float, height: float, low: float, high: float) -> np.ndarray:
    """``[n, 4]`` xywh boxes inside the image, sides log-uniform in [low, high]."""
    w = np.minimum(np.exp(rng.uniform(np.log(low), np.log(high), n)), width - 1)
    h = np.minimum(np.exp(rng.uniform(np.log(low), np.log(high), n)), height - 1)
    return np.stack([rng.uniform(0, width - w), rng.uniform(0, height - h), w, h], axis=1)


def _jitter(rng: np.random.Generator, boxes: np.ndarray, sigma: float) -> np.ndarray:
    """Boxes moved and resized by ``sigma`` of their size (kept at >= 1 px)."""
    noise = rng.normal(0.0, sigma, boxes.shape) * boxes[:, [2, 3, 2, 3]]
    out = boxes + noise
    out[:, 2:] = np.maximum(out[:, 2:], 1.0)
    return out


def _records(image: np.ndarray, category: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> list[dict]:
    return [{"image_id": i, "category_id": c, "bbox": b, "score": s}
            for i, c, b, s in zip(image.tolist(), category.tolist(), boxes.tolist(), scores.tolist())]


def lvis_case(scale: float, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """LVIS-v1-val-like ground truth and detections (module docstring)."""
    rng = np.random.default_rng(seed)
    n_cat = sum(LVIS_FREQUENCIES.values())
    freq = rng.permutation(np.repeat(list(LVIS_FREQUENCIES), list(LVIS_FREQUENCIES.values())))
    categories = [{"id": k + 1, "name": f"lvis_{k:04d}", "frequency": str(f), "synonyms": [], "synset": ""}
                  for k, f in enumerate(freq)]
    weight = np.select([freq == "f", freq == "c"], [20.0, 3.0], 0.5)
    weight /= weight.sum()
    images, annotations, parts = [], [], []
    for image_id in range(1, max(1, round(LVIS_IMAGES * scale)) + 1):
        width, height = 640.0, 480.0
        n_pos, n_neg = 1 + rng.poisson(2.0), rng.poisson(8.0)
        chosen = rng.choice(n_cat, size=n_pos + n_neg, replace=False, p=weight) + 1
        pos, neg = chosen[:n_pos], chosen[n_pos:]
        images.append({"id": image_id, "width": width, "height": height, "coco_url": f"val2017/{image_id:012d}.jpg",
                       "neg_category_ids": neg.tolist(),
                       "not_exhaustive_category_ids": pos[rng.uniform(size=n_pos) < 0.15].tolist()})
        gt_cat = np.repeat(pos, 1 + rng.poisson(1.3, n_pos))
        gt_box = _boxes(rng, len(gt_cat), width, height, 4, 400)
        area = gt_box[:, 2] * gt_box[:, 3] * rng.uniform(0.5, 0.95, len(gt_cat))  # a mask's area, < the box's
        for cat, box, a in zip(gt_cat.tolist(), gt_box.tolist(), area.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cat,
                                "bbox": box, "area": a, "segmentation": []})
        near = np.repeat(np.arange(len(gt_cat)), 1 + rng.poisson(2.0, len(gt_cat)))
        pick = rng.uniform(size=len(near))
        near_cat = np.where(pick < 0.6, gt_cat[near], np.where(
            pick < 0.85, rng.choice(chosen, len(near)), rng.integers(1, n_cat + 1, len(near))))
        near_score = np.where(pick < 0.6, rng.beta(4, 2, len(near)), rng.beta(2, 4, len(near)))
        n_rest = (310 if image_id % 10 == 0 else 300) - len(near)
        pick = rng.uniform(size=n_rest)
        rest_cat = np.where(pick < 0.2, rng.choice(pos, n_rest), np.where(
            pick < 0.35, rng.choice(neg, n_rest) if n_neg else rng.choice(pos, n_rest),
            rng.integers(1, n_cat + 1, n_rest)))
        parts.append((np.full(len(near) + n_rest, image_id), np.r_[near_cat, rest_cat],
                      np.r_[_jitter(rng, gt_box[near], 0.1), _boxes(rng, n_rest, width, height, 4, 300)],
                      np.r_[near_score, rng.beta(1.2, 6, n_rest)]))
    image, category, boxes, scores = (np.concatenate(p) for p in zip(*parts))
    scores = scores.astype(np.float32).astype(float)  # a detector's float32 scores: ties happen
    gt = {"info": {}, "licenses": [], "images": images, "categories": categories, "annotations": annotations}
    return gt, _records(image, category, boxes, scores)


def synthetic_hierarchy(rng: np.random.Generator, n_classes: int, top: int = 60, max_depth: int = 5
                        ) -> tuple[dict[str, Any], np.ndarray]:
    """A random class tree in ``bbox_labels_600_hierarchy.json``'s layout, and each class's parent (-1: root)."""
    parent, depth = np.full(n_classes, -1), np.ones(n_classes, dtype=int)
    for k in range(top, n_classes):
        shallow = np.flatnonzero(depth[:k] < max_depth)
        parent[k] = rng.choice(shallow)
        depth[k] = depth[parent[k]] + 1
    children: dict[int, list[int]] = {k: [] for k in range(-1, n_classes)}
    for k in range(n_classes):
        children[int(parent[k])].append(k)

    def node(k: int) -> dict[str, Any]:
        out: dict[str, Any] = {"LabelName": f"/m/syn{k:04d}"}
        if children[k]:
            out["Subcategory"] = [node(c) for c in children[k]]
        return out

    return {"LabelName": OPENIMAGES_ROOT, "Subcategory": [node(k) for k in children[-1]]}, parent


def openimages_case(scale: float, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """OpenImages-v6-val-like ground truth, detections and hierarchy (module docstring)."""
    rng = np.random.default_rng(seed)
    n_cls = OPENIMAGES_CLASSES
    hierarchy, parent = synthetic_hierarchy(rng, n_cls)
    top = np.arange(n_cls)
    while (parent[top] >= 0).any():
        top = np.where(parent[top] >= 0, parent[top], top)
    leaf = np.ones(n_cls, dtype=bool)
    leaf[parent[parent >= 0]] = False
    weight = np.where(leaf, 3.0, 1.0)
    weight /= weight.sum()
    categories = [{"id": k + 1, "name": f"oi_{k:04d}", "mid": f"/m/syn{k:04d}"} for k in range(n_cls)]
    images, annotations, parts = [], [], []
    for image_id in range(1, max(1, round(OPENIMAGES_IMAGES * scale)) + 1):
        width, height = 1024.0, 768.0
        pos = rng.choice(n_cls, size=1 + rng.poisson(1.5), replace=False, p=weight)
        unrelated = np.flatnonzero(~np.isin(top, top[pos]))
        neg = rng.choice(unrelated, size=min(len(unrelated), rng.poisson(4.0)), replace=False)
        extra = rng.choice(unrelated, size=int(rng.uniform() < 0.1)) if len(unrelated) else unrelated[:0]
        images.append({"id": image_id, "width": width, "height": height, "file_name": f"{image_id:016x}.jpg",
                       "pos_category_ids": (np.r_[pos, extra] + 1).tolist(), "neg_category_ids": (neg + 1).tolist()})
        gt_cls = np.repeat(pos, 1 + rng.poisson(1.5, len(pos)))
        group = rng.uniform(size=len(gt_cls)) < 0.08
        gt_box = np.where(group[:, None], _boxes(rng, len(gt_cls), width, height, 150, 700),
                          _boxes(rng, len(gt_cls), width, height, 8, 500))
        for cls, box, g in zip(gt_cls.tolist(), gt_box.tolist(), group.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cls + 1,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": int(g)})
        near = np.repeat(np.arange(len(gt_cls)), np.where(group, 2 + rng.poisson(2.0, len(gt_cls)),
                                                          1 + rng.poisson(1.5, len(gt_cls))))
        pick = rng.uniform(size=len(near))
        near_cls = np.where(pick < 0.6, gt_cls[near], np.where(
            (pick < 0.7) & (parent[gt_cls[near]] >= 0), parent[gt_cls[near]], rng.integers(0, n_cls, len(near))))
        near_score = np.where(pick < 0.7, rng.beta(4, 2, len(near)), rng.beta(2, 4, len(near)))
        inside = group[near]  # small boxes inside a group-of box: its members
        box = _jitter(rng, gt_box[near], 0.1)
        member = gt_box[near] * [1, 1, 0, 0] + rng.uniform(0, 0.8, (len(near), 4)) * gt_box[near][:, [2, 3, 2, 3]]
        member[:, 2:] = np.maximum(gt_box[near][:, 2:] * rng.uniform(0.1, 0.25, (len(near), 2)), 2.0)
        box[inside] = member[inside]
        n_rest = max(0, 100 - len(near))
        pick = rng.uniform(size=n_rest)
        rest_cls = np.where(pick < 0.25, rng.choice(pos, n_rest), rng.integers(0, n_cls, n_rest))
        parts.append((np.full(len(near) + n_rest, image_id), np.r_[near_cls, rest_cls] + 1,
                      np.r_[box, _boxes(rng, n_rest, width, height, 8, 400)],
                      np.r_[near_score, rng.beta(1.2, 6, n_rest)]))
    image, category, boxes, scores = (np.concatenate(p) for p in zip(*parts))
    gt = {"info": {}, "licenses": [], "images": images, "categories": categories, "annotations": annotations}
    return gt, _records(image, category, boxes, scores), hierarchy


def coco_case(n_images: int, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """COCO-val-like ground truth (80 categories, ~7 boxes per image, 1 % crowd) and ~27 detections per image."""
    rng = np.random.default_rng(seed)
    ids = np.array(COCO_IDS)
    categories = [{"id": int(c), "name": f"coco_{c}", "supercategory": "thing"} for c in ids]
    images, annotations, parts = [], [], []
    for image_id in range(1, n_images + 1):
        width, height = 640.0, 480.0
        images.append({"id": image_id, "width": width, "height": height, "file_name": f"{image_id:012d}.jpg"})
        gt_cat = rng.choice(ids, size=rng.poisson(7.3))
        gt_box = _boxes(rng, len(gt_cat), width, height, 4, 400)
        crowd = rng.uniform(size=len(gt_cat)) < 0.01
        for cat, box, c in zip(gt_cat.tolist(), gt_box.tolist(), crowd.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cat, "bbox": box,
                                "area": box[2] * box[3] * 0.8, "iscrowd": int(c)})
        near = np.repeat(np.arange(len(gt_cat)), 1 + rng.poisson(1.0, len(gt_cat)))
        true = rng.uniform(size=len(near)) < 0.8
        n_rest = rng.poisson(12.0)
        parts.append((np.full(len(near) + n_rest, image_id),
                      np.r_[np.where(true, gt_cat[near], rng.choice(ids, len(near))), rng.choice(ids, n_rest)],
                      np.r_[_jitter(rng, gt_box[near], 0.08), _boxes(rng, n_rest, width, height, 4, 300)],
                      np.r_[np.where(true, rng.beta(4, 2, len(near)), rng.beta(2, 4, len(near))),
                            rng.beta(1.2, 6, n_rest)]))
    image, category, boxes, scores = (np.concatenate(p) for p in zip(*parts))
    gt = {"info": {}, "licenses": [], "images": images, "categories": categories, "annotations": annotations}
    return gt, _records(image, category, boxes, scores)


# ------------------------------------------------------------------------------------------- references


def lvis_reference(gt: dict[str, Any], detections: list[dict[str, Any]], max_dets: int = 300) -> dict[str, Any]:
    """The ``lvis`` package's metrics on the same inputs, and per-class AP from its precision array."""
    import lvis

    np.float = float  # lvis 0.5.3 still uses the alias numpy 1.24 removed
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gt.json"
        path.write_text(json.dumps(gt))
        lvis_gt = lvis.LVIS(str(path))
        evaluator = lvis.LVISEval(lvis_gt, lvis.LVISResults(lvis_gt, copy.deepcopy(detections), max_dets), "bbox")
        evaluator.run()
    names = {c["id"]: c["name"] for c in gt["categories"]}
    per_class = {}
    for k, cat_id in enumerate(evaluator.params.cat_ids):
        p = evaluator.eval["precision"][:, :, k, 0]
        per_class[names[cat_id]] = float(p[p > -1].mean()) if (p > -1).any() else -1.0
    return {**{key: float(evaluator.results[key]) for key in LVIS_KEYS}, "per_class": per_class}


def _py3_unicode(text: Any, encoding: str) -> str:
    raise TypeError("already text")  # what Python 2's unicode() raised for a unicode string


def _tf_object_detection() -> tuple[Any, Any, Any]:
    """The TF OD API's evaluation module, its field names and its hierarchy expansion module, importable here.

    Stand-ins: ``tensorflow`` (used only by its TF metric ops), ``label_map_util`` (needs compiled protos;
    one 4-line function is used), Python 2's ``unicode`` (metric names) and ``dict.iteritems`` (the
    expansion script), numpy's removed ``np.float`` and ``np.NAN``.
    """
    import importlib.util

    np.float, np.NAN = float, np.nan
    sys.modules.setdefault("tensorflow", types.ModuleType("tensorflow"))
    label_map = types.ModuleType("object_detection.utils.label_map_util")
    label_map.create_category_index = lambda categories: {c["id"]: c for c in categories}
    sys.modules["object_detection.utils.label_map_util"] = label_map
    from object_detection.core import standard_fields
    from object_detection.utils import object_detection_evaluation

    object_detection_evaluation.unicode = _py3_unicode
    spec = importlib.util.find_spec("object_detection.dataset_tools.oid_hierarchical_labels_expansion")
    expansion = types.ModuleType("oid_hierarchical_labels_expansion")
    source = Path(spec.origin).read_text().replace(".iteritems()", ".items()")
    exec(compile(source, spec.origin, "exec"), expansion.__dict__)  # noqa: S102 - the reference's own code
    return object_detection_evaluation, standard_fields, expansion


def openimages_reference(gt: dict[str, Any], detections: list[dict[str, Any]],
                         hierarchy: dict[str, Any]) -> dict[str, Any]:
    """The TF OD API's challenge evaluator on the same inputs: boxes, image-level labels and detections
    expanded with its ``OIDHierarchicalLabelsExpansion`` (as CSV rows), boxes as [ymin, xmin, ymax, xmax]."""
    evaluation, fields, expansion = _tf_object_detection()
    expander = expansion.OIDHierarchicalLabelsExpansion(hierarchy)
    id_of = {c["mid"]: c["id"] for c in gt["categories"]}
    mid_of = {c["id"]: c["mid"] for c in gt["categories"]}
    memo: dict[tuple[int, str], list[int]] = {}

    def expanded(cat: int, kind: str) -> list[int]:
        if (cat, kind) not in memo:
            rows = (expander.expand_boxes_from_csv(f"i,s,{mid_of[cat]},1,0,0,0,0,0,0,0,0,0") if kind == "box"
                    else expander.expand_labels_from_csv(f"i,s,{mid_of[cat]},{1 if kind == 'pos' else 0}"))
            memo[cat, kind] = [id_of[row.split(",")[2]] for row in rows]
        return memo[cat, kind]

    def corners(b: list[float]) -> list[float]:
        return [b[1], b[0], b[1] + b[3], b[0] + b[2]]

    evaluator = evaluation.OpenImagesDetectionChallengeEvaluator(
        [{"id": c["id"], "name": c["name"]} for c in gt["categories"]])
    boxes: dict[int, list[tuple[list[float], int, bool]]] = {img["id"]: [] for img in gt["images"]}
    for ann in gt["annotations"]:
        boxes[ann["image_id"]] += [(corners(ann["bbox"]), c, bool(ann["iscrowd"]))
                                   for c in expanded(ann["category_id"], "box")]
    for img in gt["images"]:
        labels = ([c for p in img["pos_category_ids"] for c in expanded(p, "pos")]
                  + [c for n in img["neg_category_ids"] for c in expanded(n, "neg")])
        rows = boxes[img["id"]]
        evaluator.add_single_ground_truth_image_info(img["id"], {
            fields.InputDataFields.groundtruth_boxes: np.array([r[0] for r in rows], dtype=float).reshape(-1, 4),
            fields.InputDataFields.groundtruth_classes: np.array([r[1] for r in rows], dtype=int),
            fields.InputDataFields.groundtruth_group_of: np.array([r[2] for r in rows], dtype=bool),
            fields.InputDataFields.groundtruth_image_classes: np.array(labels, dtype=int)})
    found: dict[int, list[tuple[list[float], float, int]]] = {}
    for det in detections:
        found.setdefault(det["image_id"], []).extend(
            (corners(det["bbox"]), det["score"], c) for c in expanded(det["category_id"], "box"))
    for image_id, rows in found.items():
        evaluator.add_single_detected_image_info(image_id, {
            fields.DetectionResultFields.detection_boxes: np.array([r[0] for r in rows], dtype=float),
            fields.DetectionResultFields.detection_scores: np.array([r[1] for r in rows], dtype=float),
            fields.DetectionResultFields.detection_classes: np.array([r[2] for r in rows], dtype=int)})
    with contextlib.redirect_stderr(io.StringIO()):
        metrics = evaluator._evaluation.evaluate()
    per_class = {c["name"]: float(metrics.average_precisions[c["id"] - 1]) for c in gt["categories"]
                 if not np.isnan(metrics.average_precisions[c["id"] - 1])}
    return {"AP50": float(metrics.mean_ap), "per_class": per_class}


def _pycocotools(gt: dict[str, Any], detections: list[dict[str, Any]]) -> Any:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _faster_coco_eval(gt: dict[str, Any], detections: list[dict[str, Any]]) -> Any:
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(gt)
        evaluator = COCOeval_faster(coco, coco.loadRes(detections), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


# ------------------------------------------------------------------------------------ cases (subprocess)


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _difference(ours: dict[str, Any], reference: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Largest absolute difference over the metrics and the per-class APs; classes present in only one."""
    diffs = [abs(ours[k] - reference[k]) for k in keys]
    only = sorted(set(ours["per_class"]) ^ set(reference["per_class"]))
    diffs += [abs(ours["per_class"][k] - reference["per_class"][k])
              for k in set(ours["per_class"]) & set(reference["per_class"])]
    worst = max(diffs, default=0.0)
    return {"max_abs_diff": worst, "classes_in_one_only": only[:10], "identical": worst == 0.0 and not only}


def _case_inputs(kind: str, scale: float, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    if kind == "lvis":
        gt, dets = lvis_case(scale, seed)
        return gt, dets, None
    return openimages_case(scale, seed)


def _score(kind: str, gt: dict[str, Any], dets: list[dict[str, Any]], hierarchy: Any) -> dict[str, Any]:
    if kind == "lvis":
        from scaledet.metrics_lvis import lvis_eval

        return lvis_eval(gt, dets, max_dets=300)
    from scaledet.metrics_openimages import openimages_eval

    return openimages_eval(gt, dets, hierarchy)


def run_full(kind: str, scale: float, seed: int) -> dict[str, Any]:
    """Ours on the full-size case: build time, scoring time, resident size before and peak while scoring."""
    start = time.perf_counter()
    gt, dets, hierarchy = _case_inputs(kind, scale, seed)
    built = time.perf_counter() - start
    inputs = _status_mib("VmRSS")
    reset = _reset_peak()
    start = time.perf_counter()
    result = _score(kind, gt, dets, hierarchy)
    seconds = time.perf_counter() - start
    peak = _status_mib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    key = "AP" if kind == "lvis" else "AP50"
    return {"case": kind, "scale": scale, "images": len(gt["images"]), "categories": len(gt["categories"]),
            "gt_boxes": len(gt["annotations"]), "detections": len(dets), "build_s": built, "ours_s": seconds,
            "inputs_rss_mib": inputs, "peak_rss_mib": peak, "peak_is_while_scoring": reset,
            "metric": key, "value": result[key]}


def run_shared(kind: str, scale: float, seed: int) -> dict[str, Any]:
    """Ours and the reference on the same smaller case; their results must be identical."""
    gt, dets, hierarchy = _case_inputs(kind, scale, seed)
    row: dict[str, Any] = {"case": f"{kind}-shared", "scale": scale, "images": len(gt["images"]),
                           "gt_boxes": len(gt["annotations"]), "detections": len(dets)}
    start = time.perf_counter()
    ours = _score(kind, gt, dets, hierarchy)
    row["ours_s"] = time.perf_counter() - start
    try:
        start = time.perf_counter()
        reference = lvis_reference(gt, dets) if kind == "lvis" else openimages_reference(gt, dets, hierarchy)
        row["reference_s"] = time.perf_counter() - start
    except ImportError as error:
        hint = "lvis (a dev dependency)" if kind == "lvis" else "pip install --no-deps object-detection==0.0.3"
        row["reference_missing"] = f"{error} ({hint})"
        return row
    row.update(_difference(ours, reference, LVIS_KEYS if kind == "lvis" else ("AP50",)))
    key = "AP" if kind == "lvis" else "AP50"
    row.update(metric=key, ours=ours[key], reference=reference[key])
    return row


def run_coco(n_images: int, repeats: int, seed: int) -> dict[str, Any]:
    """Ours vs pycocotools vs faster-coco-eval alone: median seconds and the stats compared."""
    import faster_coco_eval  # noqa: F401 - imported before the clock starts, as the others are
    import pycocotools.cocoeval  # noqa: F401

    from scaledet.evaluation import STAT_NAMES, coco_eval

    gt, dets = coco_case(n_images, seed)
    runs = {"pycocotools": _pycocotools, "faster-coco-eval": _faster_coco_eval, "ours": coco_eval}
    times: dict[str, list[float]] = {name: [] for name in runs}
    out: dict[str, Any] = {}
    for repeat in range(repeats):
        for name in [*runs][repeat % 3:] + [*runs][:repeat % 3]:  # each goes first in turn (the machine is shared)
            run = runs[name]
            g, d = copy.deepcopy(gt), copy.deepcopy(dets)
            start = time.perf_counter()
            out[name] = run(g, d)
            times[name].append(time.perf_counter() - start)
    ref, fast, ours = out["pycocotools"], out["faster-coco-eval"], out["ours"]
    names = {c["id"]: c["name"] for c in gt["categories"]}

    def metrics(evaluator: Any) -> dict[str, Any]:
        """The 6 stats and per-class AP as coco_eval reports them, from an evaluator's arrays."""
        per_class = {}
        for k, cat_id in enumerate(evaluator.params.catIds):
            p = evaluator.eval["precision"][:, :, k, 0, -1]
            per_class[names[cat_id]] = float(p[p > -1].mean()) if (p > -1).any() else -1.0
        return {**{n: float(v) for n, v in zip(STAT_NAMES, evaluator.stats[:6])}, "per_class": per_class}

    median = {name: statistics.median(t) for name, t in times.items()}
    same = _difference(ours, metrics(fast), STAT_NAMES)
    near = _difference(ours, metrics(ref), STAT_NAMES)
    return {"case": "coco", "images": len(gt["images"]), "categories": len(gt["categories"]),
            "gt_boxes": len(gt["annotations"]), "detections": len(dets), "repeats": repeats,
            "seconds": median, "all_seconds": times,
            "speedup_vs_pycocotools": {n: median["pycocotools"] / median[n] for n in ("faster-coco-eval", "ours")},
            "ours_over_faster_coco_eval": median["ours"] / median["faster-coco-eval"] - 1,
            "max_abs_diff_vs_faster_coco_eval": same["max_abs_diff"],
            "max_abs_diff_vs_pycocotools": near["max_abs_diff"],
            "identical_to_faster_coco_eval": same["identical"],
            "agrees": same["identical"] and near["max_abs_diff"] <= COCO_ROUNDING and not near["classes_in_one_only"],
            "AP": ours["AP"]}


# --------------------------------------------------------------------------------------------- driver


def _child(name: str, args: argparse.Namespace) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", name, "--scale", str(args.scale),
            "--reference-scale", str(args.reference_scale), "--seed", str(args.seed),
            "--coco-images", str(args.coco_images), "--coco-repeats", str(args.coco_repeats)]


def _run_child(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One case in its own process (its own peak memory); its row is the last line it prints."""
    print(f"... {name}", file=sys.stderr, flush=True)
    done = subprocess.run(_child(name, args), stdout=subprocess.PIPE, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"case": name, "error": f"exit code {done.returncode}", "identical": False}
    return json.loads(lines[-1])


def _meta(argv: list[str]) -> dict[str, Any]:
    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"command": " ".join(["python", "benchmarks/bench_metrics.py", *argv]), "date": time.strftime("%Y-%m-%d"),
            "machine": platform.machine(), "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "versions": {p: version(p) for p in ("numpy", "lvis", "pycocotools", "faster-coco-eval", "object-detection")},
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def _print_tables(full: list[dict], shared: list[dict], coco: dict | None, args: argparse.Namespace) -> None:
    if full:
        print(f"\nscaledet scoring at scale {args.scale:g} (full size = 1), one process per case")
        print(f"{'case':<11} {'images':>7} {'classes':>7} {'gt boxes':>9} {'detections':>10} {'score s':>8} "
              f"{'peak RSS MiB':>12} {'inputs MiB':>10} {'metric':>14}")
        for r in full:
            if "error" in r:
                print(f"{r['case']:<11} ERROR {r['error']}")
                continue
            print(f"{r['case']:<11} {r['images']:>7} {r['categories']:>7} {r['gt_boxes']:>9} {r['detections']:>10} "
                  f"{r['ours_s']:>8.1f} {r['peak_rss_mib']:>12.0f} {r['inputs_rss_mib']:>10.0f} "
                  f"{r['metric'] + ' ' + format(r['value'], '.4f'):>14}")
    if shared:
        print(f"\nagainst the reference implementations on a shared case (scale {args.reference_scale:g})")
        print(f"{'case':<18} {'images':>7} {'detections':>10} {'ours s':>7} {'reference s':>11} {'ratio':>6} "
              f"{'max |diff|':>10}  identical")
        for r in shared:
            if "error" in r or "reference_missing" in r:
                print(f"{r['case']:<18} reference does not run here: {r.get('error') or r['reference_missing']}")
                continue
            print(f"{r['case']:<18} {r['images']:>7} {r['detections']:>10} {r['ours_s']:>7.2f} "
                  f"{r['reference_s']:>11.1f} {r['reference_s'] / r['ours_s']:>5.0f}x {r['max_abs_diff']:>10.1e}  "
                  f"{'yes' if r['identical'] else 'NO'}")
    if coco and "error" in coco:
        print(f"\nCOCO: ERROR {coco['error']}")
    elif coco:
        s = coco["seconds"]
        print(f"\nCOCO: {coco['images']} images, {coco['gt_boxes']} boxes, {coco['detections']} detections, "
              f"median of {coco['repeats']}")
        print(f"{'evaluator':<26} {'median s':>8} {'x pycocotools':>13} {'min s':>6}")
        for name, label in (("pycocotools", "pycocotools"), ("faster-coco-eval", "faster-coco-eval alone"),
                            ("ours", "scaledet coco_eval")):
            print(f"{label:<26} {s[name]:>8.2f} {s['pycocotools'] / s[name]:>12.1f}x "
                  f"{min(coco['all_seconds'][name]):>6.2f}")
        print(f"coco_eval over faster-coco-eval alone: {100 * coco['ours_over_faster_coco_eval']:+.0f} %. Stats and "
              f"per-class AP: max |diff| {coco['max_abs_diff_vs_faster_coco_eval']:.1e} to faster-coco-eval alone, "
              f"{coco['max_abs_diff_vs_pycocotools']:.1e} to pycocotools (allowed: {COCO_ROUNDING:.0e}) -> "
              f"{'OK' if coco['agrees'] else 'MISMATCH'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size of the LVIS / OpenImages cases (1 = full)")
    parser.add_argument("--reference-scale", type=float, default=0.05, help="size of the shared reference cases")
    parser.add_argument("--cases", nargs="+", default=["coco", "lvis", "openimages"],
                        choices=["coco", "lvis", "openimages"])
    parser.add_argument("--no-reference", action="store_true", help="skip the shared reference cases")
    parser.add_argument("--coco-images", type=int, default=1500)
    parser.add_argument("--coco-repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_metrics.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind = args.child.removesuffix("-shared")
        row = (run_coco(args.coco_images, args.coco_repeats, args.seed) if args.child == "coco"
               else run_shared(kind, args.reference_scale, args.seed) if args.child.endswith("-shared")
               else run_full(kind, args.scale, args.seed))
        print(json.dumps(row))
        return

    full, shared, coco = [], [], None
    for case in args.cases:
        if case == "coco":
            coco = _run_child("coco", args)
            continue
        full.append(_run_child(case, args))
        if not args.no_reference:
            shared.append(_run_child(f"{case}-shared", args))
    _print_tables(full, shared, coco, args)
    slow = [r["case"] for r in full if r.get("ours_s", 0) > 600]
    bad = [r["case"] for r in shared if "reference_missing" not in r and not r.get("identical")]
    if coco and not coco.get("agrees"):
        bad.append("coco")
    bad += [r["case"] for r in full if "error" in r]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": _meta(sys.argv[1:]), "full": full, "shared": shared, "coco": coco,
                                    "ok": not bad}, indent=2))
    print(f"wrote {args.out}")
    if slow:
        print(f"!!! over 10 minutes: {', '.join(slow)}")
    if coco and coco.get("speedup_vs_pycocotools", {}).get("ours", 5) < 5:
        print("!!! coco_eval under 5x pycocotools on this run (timings on a shared machine vary: run again)")
    if bad:
        print(f"!!! MISMATCH or failure: {', '.join(bad)} (see above)")
        sys.exit(1)


if __name__ == "__main__":
    main()
