"""OpenImages AP@0.5 over the expanded hierarchy, on hand-made cases with the real v6 classes and hierarchy."""

from __future__ import annotations

import pytest

from harness.catalog.upstream_labels import openimages_hierarchy, upstream_classes
from scaledet.metrics_openimages import average_precision, hierarchy_relations, openimages_eval

CLASSES = upstream_classes("openimages")
ID = {c.name: c.original_id for c in CLASSES}
CATEGORIES = [{"id": c.original_id, "name": c.name, "mid": c.mid} for c in CLASSES]


def _gt(images: list[dict], boxes: list[tuple[int, str, list[float], bool]]) -> dict:
    annotations = [{"id": i + 1, "image_id": img, "category_id": ID[name], "bbox": box, "iscrowd": int(group)}
                   for i, (img, name, box, group) in enumerate(boxes)]
    return {"images": images, "categories": CATEGORIES, "annotations": annotations}


def _det(img: int, name: str, box: list[float], score: float) -> dict:
    return {"image_id": img, "category_id": ID[name], "bbox": box, "score": score}


def test_hierarchy_relations_of_the_real_tree() -> None:
    up, down = hierarchy_relations(openimages_hierarchy())
    mids = {c.name: c.mid for c in CLASSES}
    assert len(up) == 601 and set(up) == {c.mid for c in CLASSES}  # root /m/0bl9f is not a class
    assert up[mids["Man"]] == {mids["Man"], mids["Person"]}
    assert up[mids["Dog"]] == {mids[n] for n in ("Dog", "Carnivore", "Mammal", "Animal")}
    assert mids["Car"] in down[mids["Land vehicle"]] and mids["Car"] in down[mids["Vehicle"]]
    assert down[mids["Man"]] == {mids["Man"]}


def test_average_precision_all_point_interpolation() -> None:
    import numpy as np

    # precision [1, 1/2, 2/3] at recall [1/3, 1/3, 2/3]; interpolated: 1 on (0, 1/3], 2/3 on (1/3, 2/3]
    ap = average_precision(np.array([0.9, 0.8, 0.7]), np.array([1.0, 0.0, 1.0]), 3)
    assert ap == pytest.approx(1 / 3 + (1 / 3) * (2 / 3))


def test_a_child_detection_counts_for_its_parent() -> None:
    gt = _gt([{"id": 1}], [(1, "Man", [0, 0, 10, 10], False)])
    dets = [_det(1, "Man", [0, 0, 10, 10], 0.9)]
    result = openimages_eval(gt, dets, openimages_hierarchy())
    assert result["per_class"] == {"Man": 1.0, "Person": 1.0}  # the Man box is a Person box too
    assert result["AP50"] == 1.0
    flat = openimages_eval(gt, dets, openimages_hierarchy(), expand_detections=False)
    assert flat["per_class"] == {"Man": 1.0, "Person": 0.0}  # a model that outputs no parent classes
    assert flat["AP50"] == 0.5


def test_unverified_classes_are_ignored_and_negatives_expand_down() -> None:
    images = [{"id": 1}, {"id": 2, "pos_category_ids": [], "neg_category_ids": [ID["Land vehicle"]]},
              {"id": 3}, {"id": 4}]
    gt = _gt(images, [(1, "Man", [0, 0, 10, 10], False), (3, "Car", [0, 0, 20, 20], False),
                      (4, "Dog", [5, 5, 30, 30], False)])
    dets = [_det(1, "Man", [0, 0, 10, 10], 0.9),
            _det(1, "Dog", [50, 50, 10, 10], 0.95),  # nothing animal is verified on image 1: ignored
            _det(2, "Car", [0, 0, 20, 20], 0.8),  # Car (below Land vehicle) verified negative on 2: FP for Car and
            #                                        Land vehicle; Vehicle is not verified on 2: ignored there
            _det(3, "Car", [0, 0, 20, 20], 0.7),
            _det(4, "Dog", [5, 5, 30, 30], 0.6)]
    result = openimages_eval(gt, dets, openimages_hierarchy())
    expected = {"Man": 1.0, "Person": 1.0, "Car": 0.5, "Land vehicle": 0.5, "Vehicle": 1.0, "Dog": 1.0,
                "Carnivore": 1.0, "Mammal": 1.0, "Animal": 1.0}
    assert result["per_class"] == pytest.approx(expected)
    assert result["AP50"] == pytest.approx(8 / 9)


def test_group_of_boxes() -> None:
    boxes = [(1, "Person", [0, 0, 100, 100], True), (1, "Person", [200, 200, 10, 10], False)]
    dets = [_det(1, "Person", [10, 10, 20, 20], 0.9),  # inside the group-of box
            _det(1, "Person", [50, 50, 20, 20], 0.8),  # inside it too: ignored, the group counts once (score .9)
            _det(1, "Person", [95, 95, 20, 20], 0.85),  # 25/400 of it inside: FP
            _det(1, "Person", [200, 200, 10, 10], 0.7),  # TP on the single box
            _det(1, "Person", [200, 200, 10, 9], 0.65)]  # IoU .9 with an already matched box: FP
    result = openimages_eval(_gt([{"id": 1}], boxes), dets, openimages_hierarchy())
    # ranked: .9 TP (group), .85 FP, .7 TP, .65 FP; 2 instances -> AP = 1/2 * 1 + 1/2 * 2/3
    assert result["per_class"] == pytest.approx({"Person": 1 / 2 + (1 / 2) * (2 / 3)})
    missed = boxes + [(2, "Person", [0, 0, 50, 50], True)]  # a group-of box nobody detects is one miss
    result = openimages_eval(_gt([{"id": 1}, {"id": 2}], missed), dets, openimages_hierarchy())
    assert result["per_class"] == pytest.approx({"Person": 1 / 3 + (1 / 3) * (2 / 3)})
