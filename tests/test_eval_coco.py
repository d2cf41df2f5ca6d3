"""coco_eval: same numbers as pycocotools on a non-trivial case; empty detections give AP 0."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest

from scaledet.evaluation import STAT_NAMES, coco_eval


def _case(seed: int = 0):
    """30 images, 3 categories with sparse ids (incl. one without ground truth), jittered detections."""
    rng = np.random.default_rng(seed)
    gt = {"images": [{"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in range(1, 31)],
          "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}, {"id": 11, "name": "yak"}],
          "annotations": []}
    dets = []
    for img in gt["images"]:
        for _ in range(rng.integers(0, 5)):
            w, h = rng.uniform(8, 300, 2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            cat = int(rng.choice([3, 7]))
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": img["id"], "category_id": cat,
                                      "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            if rng.uniform() < 0.8:
                jitter = rng.normal(0, 0.1, 4) * [w, h, w, h]
                dets.append({"image_id": img["id"], "category_id": int(rng.choice([cat, cat, 3, 7, 11])),
                             "bbox": list(np.maximum([x, y, w, h] + jitter, 1.0)), "score": float(rng.uniform())})
        for _ in range(rng.integers(0, 3)):  # false positives
            dets.append({"image_id": img["id"], "category_id": int(rng.choice([3, 7, 11])),
                         "bbox": list(rng.uniform(1, 200, 4)), "score": float(rng.uniform(0, 0.5))})
    return gt, dets


def _pycocotools(gt, dets):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def test_matches_pycocotools_to_1e9():
    pytest.importorskip("pycocotools", reason="pycocotools is a dev dependency CI installs")
    gt, dets = _case()
    ours = coco_eval(gt, dets)
    ref = _pycocotools(gt, dets)
    for name, value in zip(STAT_NAMES, ref.stats[:6]):
        assert ours[name] == pytest.approx(float(value), abs=1e-9), name
    assert 0.1 < ours["AP"] < 0.9  # non-trivial
    for k, cat in enumerate(ref.params.catIds):
        p = ref.eval["precision"][:, :, k, 0, -1]
        expected = float(p[p > -1].mean()) if (p > -1).any() else -1.0
        name = {3: "cat", 7: "dog", 11: "yak"}[cat]
        assert ours["per_class"][name] == pytest.approx(expected, abs=1e-9)
    assert ours["per_class"]["yak"] == -1.0  # no ground truth: undefined


def test_perfect_detections_score_one(tmp_path):
    gt, _ = _case(1)
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in gt["annotations"]]
    path = tmp_path / "gt.json"
    path.write_text(__import__("json").dumps(gt))
    result = coco_eval(path, dets)
    assert result["AP"] == pytest.approx(1.0) and result["per_class"]["cat"] == pytest.approx(1.0)


def test_empty_detections_give_zero_not_an_error():
    gt, _ = _case(2)
    result = coco_eval(gt, [])
    assert result["AP"] == 0.0 and result["AP50"] == 0.0
    assert result["per_class"] == {"cat": 0.0, "dog": 0.0, "yak": -1.0}
    # APs is 0 when small ground truth exists (here it does) and -1 (undefined) when none does
    assert any(a["area"] < 32**2 for a in gt["annotations"])
    assert coco_eval(gt, [])["APs"] == 0.0
    large_only = {**gt, "annotations": [a for a in gt["annotations"] if a["area"] >= 96**2]}
    assert coco_eval(large_only, [])["APs"] == -1.0 and coco_eval(large_only, [])["APl"] == 0.0
