"""LVIS federated AP: a hand-computed case (negative and not-exhaustive categories, max_dets) and a
cross-check against the reference `lvis` package on a random case."""

from __future__ import annotations

import copy
import json
import random

import numpy as np
import pytest

from scaledet.metrics_lvis import lvis_eval


def _gt() -> dict:
    box = [0.0, 0.0, 10.0, 10.0]
    return {
        "images": [
            {"id": 1, "width": 100, "height": 100, "neg_category_ids": [2], "not_exhaustive_category_ids": [1]},
            {"id": 2, "width": 100, "height": 100, "neg_category_ids": [], "not_exhaustive_category_ids": []},
        ],
        "categories": [{"id": 1, "name": "a", "frequency": "f"}, {"id": 2, "name": "b", "frequency": "c"},
                       {"id": 3, "name": "c", "frequency": "r"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": box, "area": 100.0},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": box, "area": 100.0},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [20.0, 20.0, 10.0, 10.0], "area": 100.0},
            {"id": 4, "image_id": 2, "category_id": 2, "bbox": [40.0, 40.0, 10.0, 10.0], "area": 100.0},
        ],
    }


def _dets() -> list[dict]:
    return [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},  # TP
        {"image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10], "score": 0.8},  # unmatched, 1 not exhaustive on img 1: ignored
        {"image_id": 1, "category_id": 2, "bbox": [30, 30, 10, 10], "score": 0.7},  # 2 verified negative on img 1: FP
        {"image_id": 1, "category_id": 3, "bbox": [20, 20, 10, 10], "score": 0.95},  # 3 unverified on img 1: dropped
        {"image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 8.2], "score": 0.85},  # IoU 0.82: TP up to 0.80
        {"image_id": 2, "category_id": 2, "bbox": [40, 40, 10, 10], "score": 0.6},  # TP
        {"image_id": 2, "category_id": 3, "bbox": [20, 20, 10, 10], "score": 0.5},  # TP
    ]


def test_federated_rules_by_hand() -> None:
    result = lvis_eval(_gt(), _dets())
    # category a: 2 GT; d(.9) TP, d(.85) TP at IoU 0.50..0.80 (7 thresholds), FP at 0.85..0.95; d(.8) ignored.
    # Above 0.80: precision [1, 1/2] at recall [1/2, 1/2] -> precision 1 at the 51 recall points 0..0.50.
    ap_a = (7 * 1.0 + 3 * 51 / 101) / 10
    ap_b = 0.5  # FP(.7) on the negative image, then TP(.6): precision 1/2 at recall 1
    ap_c = 1.0  # the .95 detection on an unverified image is dropped, the TP remains
    assert result["per_class"] == pytest.approx({"a": ap_a, "b": ap_b, "c": ap_c})
    assert result["AP"] == pytest.approx((ap_a + ap_b + ap_c) / 3)
    assert result["AP50"] == pytest.approx((1.0 + 0.5 + 1.0) / 3)
    assert result["AP75"] == pytest.approx((1.0 + 0.5 + 1.0) / 3)
    assert (result["APf"], result["APc"], result["APr"]) == pytest.approx((ap_a, ap_b, ap_c))
    assert result["APs"] == pytest.approx(result["AP"])  # every box is small (area 100 < 32^2)
    assert result["APm"] == -1 and result["APl"] == -1


def test_not_exhaustive_and_negative_change_the_numbers() -> None:
    gt = _gt()
    gt["images"][0]["not_exhaustive_category_ids"] = []
    gt["images"][0]["neg_category_ids"] = []
    result = lvis_eval(gt, _dets())
    # a: the .8 detection is now a FP between the two TPs at IoU <= 0.80: [TP, TP(.85), FP(.8)] -> AP 1 there;
    #    above 0.80: [TP, FP, FP] -> 51/101. Unchanged because the FP comes after both TPs at <= 0.80.
    # b: category 2 is no longer verified on image 1: its FP is dropped -> AP 1.
    assert result["per_class"]["b"] == pytest.approx(1.0)
    assert result["per_class"]["a"] == pytest.approx((7 + 3 * 51 / 101) / 10)


def test_max_dets_is_applied_before_the_federated_filter() -> None:
    result = lvis_eval(_gt(), _dets(), max_dets=1)
    # image 1 keeps only its .95 detection (category 3, unverified there -> dropped); image 2 keeps .85 (a).
    ap_a = 7 * (51 / 101) / 10
    assert result["per_class"] == pytest.approx({"a": ap_a, "b": 0.0, "c": 0.0})


def _random_case(seed: int) -> tuple[dict, list[dict]]:
    rng = random.Random(seed)
    cats = [{"id": i, "name": f"c{i}", "frequency": "rcf"[i % 3]} for i in range(1, 7)]
    images, anns, dets = [], [], []
    for img in range(1, 9):
        present = rng.sample(range(1, 7), 2)
        absent = [c for c in range(1, 7) if c not in present]
        images.append({"id": img, "width": 200, "height": 200, "neg_category_ids": absent[:2],
                       "not_exhaustive_category_ids": present[:1]})
        for cat in present:
            for _ in range(rng.randint(1, 3)):
                x, y, w, h = rng.uniform(0, 120), rng.uniform(0, 120), rng.uniform(8, 80), rng.uniform(8, 80)
                anns.append({"id": len(anns) + 1, "image_id": img, "category_id": cat, "bbox": [x, y, w, h],
                             "area": w * h})
                if rng.random() < 0.8:
                    dets.append({"image_id": img, "category_id": cat, "score": rng.random(),
                                 "bbox": [x + rng.uniform(-6, 6), y + rng.uniform(-6, 6), w * rng.uniform(0.8, 1.2),
                                          h * rng.uniform(0.8, 1.2)]})
        for _ in range(4):
            dets.append({"image_id": img, "category_id": rng.randint(1, 6), "score": rng.random(),
                         "bbox": [rng.uniform(0, 150), rng.uniform(0, 150), rng.uniform(5, 60), rng.uniform(5, 60)]})
    gt = {"info": {}, "licenses": [], "images": images, "categories": cats, "annotations": anns}
    return gt, dets


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_the_lvis_package(tmp_path, monkeypatch, seed: int) -> None:
    lvis = pytest.importorskip("lvis", reason="the reference lvis package is a dev dependency")
    monkeypatch.setattr(np, "float", float, raising=False)  # lvis 0.5.3 still uses the removed alias
    gt, dets = _random_case(seed)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    reference = lvis.LVISEval(lvis.LVIS(str(path)), lvis.LVISResults(lvis.LVIS(str(path)), copy.deepcopy(dets), 5),
                              "bbox")
    reference.run()
    ours = lvis_eval(gt, dets, max_dets=5)
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"):
        assert ours[key] == pytest.approx(reference.results[key], abs=1e-12), key
    assert 0.05 < ours["AP"] < 0.95  # a case that exercises matching, not a degenerate 0 or 1


def _tied_case(seed: int) -> tuple[dict, list[dict]]:
    """40 images, 12 categories: ignored and zero-area boxes, zero-width detections, scores with ties (one
    decimal) within and across images, and more detections per image than the cap, ties at the cut."""
    rng = random.Random(seed)
    cats = [{"id": i, "name": f"c{i}", "frequency": "rcf"[i % 3]} for i in range(1, 13)]
    images, anns, dets = [], [], []
    for img in range(1, 41):
        present = rng.sample(range(1, 13), 3)
        absent = [c for c in range(1, 13) if c not in present]
        images.append({"id": img, "width": 300, "height": 300, "neg_category_ids": rng.sample(absent, 3),
                       "not_exhaustive_category_ids": present[:1] if img % 4 == 0 else []})
        for cat in present:
            for _ in range(rng.randint(1, 4)):
                x, y, w, h = rng.uniform(0, 200), rng.uniform(0, 200), rng.uniform(4, 120), rng.uniform(4, 120)
                ann = {"id": len(anns) + 1, "image_id": img, "category_id": cat, "bbox": [x, y, w, h],
                       "area": 0.0 if rng.random() < 0.05 else w * h * rng.uniform(0.5, 1.0)}
                if rng.random() < 0.05:
                    ann["ignore"] = 1
                anns.append(ann)
                for _ in range(rng.randint(0, 3)):
                    dets.append({"image_id": img, "category_id": cat if rng.random() < 0.7 else rng.randint(1, 12),
                                 "score": round(rng.random(), 1),
                                 "bbox": [x + rng.uniform(-8, 8), y + rng.uniform(-8, 8), w * rng.uniform(0.8, 1.2),
                                          h * rng.uniform(0.8, 1.2) if rng.random() < 0.97 else 0.0]})
        for _ in range(8):
            dets.append({"image_id": img, "category_id": rng.randint(1, 12), "score": round(rng.random(), 1),
                         "bbox": [rng.uniform(0, 250), rng.uniform(0, 250), rng.uniform(3, 90), rng.uniform(3, 90)]})
    rng.shuffle(dets)
    return {"info": {}, "licenses": [], "images": images, "categories": cats, "annotations": anns}, dets


def test_identical_to_the_lvis_package_with_ties_zero_areas_and_the_cap(tmp_path, monkeypatch) -> None:
    lvis = pytest.importorskip("lvis", reason="the reference lvis package is a dev dependency")
    monkeypatch.setattr(np, "float", float, raising=False)
    gt, dets = _tied_case(3)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    reference = lvis.LVISEval(lvis.LVIS(str(path)), lvis.LVISResults(lvis.LVIS(str(path)), copy.deepcopy(dets), 15),
                              "bbox")
    reference.run()
    ours = lvis_eval(gt, dets, max_dets=15)
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"):
        assert ours[key] == reference.results[key], key  # the same numbers, to the last bit
    for k, cat in enumerate(reference.params.cat_ids):
        p = reference.eval["precision"][:, :, k, 0]
        assert ours["per_class"][f"c{cat}"] == (p[p > -1].mean() if (p > -1).any() else -1.0)
    assert 0.05 < ours["AP"] < 0.95
    assert ours != lvis_eval(gt, dets, max_dets=-1)  # the cap changed something (no cap: all detections)


def test_a_detection_with_equal_ious_takes_the_later_box_as_the_reference_does() -> None:
    # boxes A and B overlap the first detection equally (IoU 90/110); the reference keeps the later box (B), so
    # the second detection, exactly on A, matches A at every threshold. Taking A first would leave it B (IoU 2/3).
    gt = {"images": [{"id": 1, "neg_category_ids": [], "not_exhaustive_category_ids": []}],
          "categories": [{"id": 1, "name": "a", "frequency": "f"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0.0, 0.0, 10.0, 10.0], "area": 100.0},
                          {"id": 2, "image_id": 1, "category_id": 1, "bbox": [2.0, 0.0, 10.0, 10.0], "area": 100.0}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [1.0, 0.0, 10.0, 10.0], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [0.0, 0.0, 10.0, 10.0], "score": 0.8}]
    # IoU 0.50..0.80: both true positives (AP 1); 0.85..0.95: a miss, then a hit (precision 1/2 up to recall 1/2)
    assert lvis_eval(gt, dets)["AP"] == pytest.approx((7 + 3 * 51 * 0.5 / 101) / 10)


def test_malformed_detections_are_data_errors() -> None:
    from scaledet.errors import DataError

    with pytest.raises(DataError, match="not in the ground truth"):
        lvis_eval(_gt(), [{**_dets()[0], "image_id": 9}])
    with pytest.raises(DataError, match=r"bbox \[x, y, w, h\] and score: ValueError"):
        lvis_eval(_gt(), [*_dets(), {**_dets()[0], "bbox": [0, 0, 1]}])
    with pytest.raises(DataError, match="KeyError: 'score'"):
        lvis_eval(_gt(), [{k: v for k, v in _dets()[0].items() if k != "score"}])
