"""coco_eval: same numbers as pycocotools on a non-trivial case; empty detections give AP 0."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest

from scaledet.errors import DataError
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


def _gt(annotations, categories=((1, "a"), (2, "b"))):
    """Two images (no file names: the evaluator does not need them) and the given categories and boxes."""
    return {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": c, "name": n} for c, n in categories],
            "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, **a} for i, a in enumerate(annotations)]}


def _exact(gt, score=0.9):
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": score}
            for a in gt["annotations"] if not a.get("iscrowd") and min(a["bbox"][2:]) >= 0]


FAR = {"image_id": 2, "category_id": 1, "bbox": [500.0, 500.0, 10.0, 10.0], "score": 0.5}  # matches nothing


@pytest.mark.parametrize(("area", "small", "medium", "large"), [
    (0.0, 0.0, -1.0, -1.0), (100.0, 0.0, -1.0, -1.0), (32.0**2, 0.0, 0.0, -1.0), (1050.0, -1.0, 0.0, -1.0),
    (5000.0, -1.0, 0.0, -1.0), (96.0**2, -1.0, 0.0, 0.0), (9300.0, -1.0, -1.0, 0.0), (20000.0, -1.0, -1.0, 0.0),
])
def test_size_ranges_are_cocos_closed_ranges_with_and_without_detections(area, small, medium, large):
    # COCO's ranges: small [0, 32²], medium [32², 96²], large [96², ...]; a missed object makes its ranges AP 0
    gt = _gt([{"bbox": [0.0, 0.0, 10.0, 10.0], "area": area}])
    for detections in ([], [FAR]):  # no detections at all (short cut) and one that matches nothing (evaluator)
        result = coco_eval(gt, detections)
        assert (result["AP"], result["AP50"], result["AP75"]) == (0.0, 0.0, 0.0)
        assert (result["APs"], result["APm"], result["APl"]) == (small, medium, large), detections
        assert result["per_class"] == {"a": 0.0, "b": -1.0}


@pytest.mark.parametrize("annotations", [[], [{"bbox": [0.0, 0.0, 50.0, 50.0], "iscrowd": 1}]])
def test_without_non_crowd_ground_truth_every_metric_is_undefined(annotations):
    # a crowd region is never a missed object: with only crowds (or nothing) there is nothing to find
    for detections in ([], [FAR]):
        result = coco_eval(_gt(annotations), detections)
        assert [result[k] for k in STAT_NAMES] == [-1.0] * 6
        assert result["per_class"] == {"a": -1.0, "b": -1.0}


def test_ranking_reaches_100_detections_per_image():
    # 11 false detections outscore the one true box: AP counts all 100 per image, so the true box is found at
    # rank 12, precision 1/12 at every recall level (not 0, as with 10 detections per image)
    gt = _gt([{"bbox": [10.0, 10.0, 40.0, 40.0]}])
    far = [{**FAR, "image_id": 1, "bbox": [100.0 + 20 * i, 300.0, 10.0, 10.0], "score": 0.9} for i in range(11)]
    result = coco_eval(gt, far + _exact(gt, score=0.1))
    assert result["AP"] == pytest.approx(1 / 12) and result["per_class"]["a"] == pytest.approx(1 / 12)


def test_ground_truth_boxes_dropped_kept_and_their_areas(caplog):
    # negative width or height: dropped and counted; zero width and sub-pixel boxes are real objects
    gt = _gt([{"bbox": [5.0, 5.0, -1.0, 4.0]}, {"bbox": [5.0, 5.0, 4.0, -1.0]},
              {"bbox": [0.0, 0.0, 100.0, 20.0]},                                  # area w * h = 2000: medium
              {"bbox": [200.0, 0.0, 0.5, 0.5], "category_id": 2},                # area 0.25: small
              {"bbox": [300.0, 0.0, 100.0, 100.0], "area": 500.0, "image_id": 2},  # segment area 500: small
              {"bbox": [0.0, 200.0, 60.0, 60.0], "iscrowd": 1}])                 # a crowd: never missed
    with caplog.at_level("WARNING", logger="scaledet.evaluation"):
        result = coco_eval(gt, _exact(gt))
    assert "ground truth: 2 ground-truth boxes with negative width or height dropped from the evaluation" in [
        r.getMessage() for r in caplog.records]
    assert result["AP"] == pytest.approx(1.0) and result["per_class"] == {"a": pytest.approx(1.0),
                                                                          "b": pytest.approx(1.0)}
    assert (result["APs"], result["APm"], result["APl"]) == (pytest.approx(1.0), pytest.approx(1.0), -1.0)
    # a box of zero width or height stays: its category has ground truth, and it is missed
    for bbox in ([5.0, 5.0, 0.0, 4.0], [5.0, 5.0, 4.0, 0.0]):
        zero = coco_eval(_gt([{"bbox": bbox, "category_id": 2}]), [FAR])
        assert zero["per_class"] == {"a": -1.0, "b": 0.0} and zero["APs"] == 0.0


def _error(gt, detections=()):
    with pytest.raises(DataError) as caught:
        coco_eval(gt, list(detections) if not isinstance(detections, str) else detections)
    return str(caught.value)


def test_bad_ground_truth_is_a_data_error_naming_the_file_and_the_field(tmp_path):
    missing = tmp_path / "missing.json"
    assert _error(missing).startswith(f"cannot read ground truth {missing}: ")
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    assert _error(broken).startswith(f"cannot read ground truth {broken}: ")
    no_images = tmp_path / "no_images.json"
    no_images.write_text('{"annotations": [], "categories": []}')
    assert _error(no_images) == f"{no_images}: field 'images' missing or not a list"
    assert _error({"annotations": [], "categories": []}) == "ground truth: field 'images' missing or not a list"
    twice = {**_gt([]), "categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}
    assert _error(twice).startswith("ground truth: category id 1 appears twice")
    assert _error({**_gt([]), "images": [{"id": 1}, {"id": 1}]}).startswith(
        "ground truth: image 1: image id appears twice (images[1])")
    unknown_image = _gt([{"bbox": [0, 0, 1, 1]}, {"bbox": [0, 0, 1, 1]}])
    del unknown_image["annotations"][1]["id"]
    unknown_image["annotations"][1]["image_id"] = 9
    assert _error(unknown_image) == "ground truth: annotation '[1]': image_id 9 is not an image id of the file"


def test_bad_detections_are_data_errors_naming_the_detection_and_the_field():
    gt = _gt([{"bbox": [0.0, 0.0, 10.0, 10.0]}], categories=[(c, f"c{c}") for c in range(1, 13)])
    ok = {"image_id": 1, "category_id": 1, "bbox": [0.0, 0.0, 10.0, 10.0], "score": 0.5}
    assert _error(gt, "dets") == "detections must be a list of COCO results, got str"
    assert _error(gt, [ok, 5]) == "detection 1: expected an object with image_id, category_id, bbox, score, got 5"
    ten = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"
    assert _error(gt, [{**ok, "category_id": 99}]) == (
        f"detection 0 refers to category 99 / image 1 not in the ground truth (categories {ten})")
    assert _error(gt, [{**ok, "image_id": 9}]).startswith("detection 0 refers to category 1 / image 9 not in")
    for not_an_id in ({"category_id": 1.0}, {"image_id": 1.0}, {"category_id": True}):  # equal to ids, not ids
        assert _error(gt, [{**ok, **not_an_id}]).startswith("detection 0 refers to category")
    assert _error(gt, [{**ok, "bbox": [0, 0, 1]}]).startswith("detection 0: field 'bbox' must be a list of 4")
    for bbox in ([0.0, 0.0, -1.0, 5.0], [0.0, 0.0, 5.0, -1.0]):
        assert _error(gt, [ok, {**ok, "bbox": bbox}]) == (
            f"detection 1: field 'bbox' has a negative width or height: {bbox}")
    assert _error(gt, [{**ok, "score": "high"}]) == (
        "detection 0: field 'score' must be a finite number, got 'high'")
    # zero-width and sub-pixel detections are valid (they just match nothing here)
    thin = coco_eval(gt, [ok, {**ok, "bbox": [50.0, 0.0, 0.0, 5.0]}, {**ok, "bbox": [50.0, 0.0, 5.0, 0.0]},
                          {**ok, "bbox": [60.0, 0.0, 0.5, 0.5]}])
    assert thin["AP"] == pytest.approx(1.0)


def test_every_valid_form_of_a_record_scores_the_same_and_an_invalid_one_is_named(monkeypatch):
    # records are checked in bulk when they are plain (ints, floats, lists, tuples: no Python call per record,
    # which keeps coco_eval close to faster-coco-eval's own time) and one by one otherwise; both accept the same
    # records with the same values, and the one-by-one check names the first bad one
    from collections import OrderedDict

    from scaledet import validation

    gt, dets = _case(4)
    plain = coco_eval(gt, dets)

    def one_by_one(*args, **kwargs):
        raise AssertionError("a plain record was checked one by one")

    for name in ("check_annotation", "check_bbox"):
        monkeypatch.setattr(validation, name, one_by_one)
    forms = copy.deepcopy(gt)
    for k, ann in enumerate(forms["annotations"]):
        ann["bbox"] = tuple(ann["bbox"]) if k % 3 == 0 else [np.float64(v) for v in ann["bbox"]]
        if k % 4 == 0:
            del ann["area"]  # it was the box's: w * h
    varied = [{**d, "bbox": tuple(d["bbox"]), "score": np.float64(d["score"])} if k % 2 else d
              for k, d in enumerate(dets)]
    assert coco_eval(forms, varied) == plain  # still the bulk path
    monkeypatch.undo()
    forms["annotations"][0]["iscrowd"] = False  # a bool is a valid iscrowd, and a dict subclass a valid record
    varied[1] = OrderedDict(varied[1])
    assert coco_eval(forms, varied) == plain  # the one-by-one path
    # otherwise plain records, one of them bad: refused, by name (the bulk check hands them to the one-by-one one)
    for k, bad, message in ((2, {"score": np.float32(0.5)}, "^detection 2: field 'score' must be a finite number"),
                            (3, {"bbox": [0.0, 0.0, float("inf"), 1.0]}, "^detection 3: field 'bbox' must be a list")):
        with pytest.raises(DataError, match=message):
            coco_eval(gt, [*dets[:k], {**dets[k], **bad}, *dets[k + 1:]])
    for bad, message in (({"area": float("nan")}, "field 'area' must be a finite number"),
                         ({"iscrowd": 2}, "field 'iscrowd' must be 0 or 1")):
        broken = copy.deepcopy(gt)
        broken["annotations"][3].update(bad)
        with pytest.raises(DataError, match=message):
            coco_eval(broken, dets)
