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


def test_zero_size_detections_are_dropped_as_the_reference_does() -> None:
    # the TF evaluator removes boxes with xmax <= xmin or ymax <= ymin before matching: not a false positive
    gt = _gt([{"id": 1}], [(1, "Person", [0, 0, 10, 10], False)])
    dets = [_det(1, "Person", [50, 50, 0, 10], 0.99), _det(1, "Person", [50, 50, 10, 0], 0.98),
            _det(1, "Person", [0, 0, 10, 10], 0.9)]
    assert openimages_eval(gt, dets, openimages_hierarchy())["per_class"] == {"Person": 1.0}


FAMILY = ["Person", "Man", "Woman", "Animal", "Mammal", "Carnivore", "Dog", "Cat", "Vehicle", "Land vehicle", "Car"]


def _random_case(seed: int) -> tuple[dict, list[dict]]:
    """30 images over a family of related classes: group-of boxes and their members, positive and negative
    image-level labels, detections of parents, children and unverified classes, distinct scores."""
    import random

    rng = random.Random(seed)
    images, boxes, dets = [], [], []
    for img in range(1, 31):
        present = rng.sample(FAMILY, 2)
        images.append({"id": img, "pos_category_ids": [ID[rng.choice(FAMILY)]] if rng.random() < 0.3 else [],
                       "neg_category_ids": [ID[n] for n in rng.sample(FAMILY, 2) if n not in present]})
        for name in present:
            for _ in range(rng.randint(1, 3)):
                group = rng.random() < 0.25
                x, y, w, h = rng.uniform(0, 100), rng.uniform(0, 100), rng.uniform(10, 90), rng.uniform(10, 90)
                boxes.append((img, name, [x, y, w, h], group))
                for _ in range(rng.randint(0, 4 if group else 2)):
                    box = ([x + rng.uniform(0, 0.7) * w, y + rng.uniform(0, 0.7) * h, w * 0.3, h * 0.3] if group else
                           [x + rng.uniform(-5, 5), y + rng.uniform(-5, 5), w * rng.uniform(0.8, 1.2),
                            h * rng.uniform(0.8, 1.2)])
                    label = name if rng.random() < 0.7 else rng.choice(FAMILY)
                    dets.append(_det(img, label, box, rng.random()))
        for _ in range(3):
            dets.append(_det(img, rng.choice(FAMILY), [rng.uniform(0, 150), rng.uniform(0, 150), rng.uniform(5, 60),
                                                      rng.uniform(5, 60)], rng.random()))
    return _gt(images, boxes), dets


def _by_definition(gt: dict, dets: list[dict]) -> dict[str, float]:
    """The protocol of the module docstring, one image and class at a time (slow, plain Python)."""
    import numpy as np

    up, down = hierarchy_relations(openimages_hierarchy())
    mid = {c["id"]: c["mid"] for c in gt["categories"]}
    cid = {c["mid"]: c["id"] for c in gt["categories"]}
    verified = {img["id"]: {cid[a] for p in img["pos_category_ids"] for a in up[mid[p]]}
                | {cid[d] for n in img["neg_category_ids"] for d in down[mid[n]]} for img in gt["images"]}
    truth: dict = {}
    for ann in gt["annotations"]:
        for a in up[mid[ann["category_id"]]]:
            truth.setdefault((ann["image_id"], cid[a]), []).append((ann["bbox"], ann["iscrowd"]))
            verified[ann["image_id"]].add(cid[a])
    found: dict = {}
    for det in dets:
        for a in up[mid[det["category_id"]]]:
            if cid[a] in verified[det["image_id"]]:
                found.setdefault((det["image_id"], cid[a]), []).append(det)

    def overlap(d: list[float], g: list[float], over_detection: bool) -> float:
        iw = max(0.0, min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0]))
        ih = max(0.0, min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1]))
        return iw * ih / (d[2] * d[3] if over_detection else d[2] * d[3] + g[2] * g[3] - iw * ih)

    entries: dict = {}
    for (img, c), found_here in found.items():
        single = [b for b, group in truth.get((img, c), []) if not group]
        group = [b for b, is_group in truth.get((img, c), []) if is_group]
        taken, group_best = set(), {}
        for det in sorted(found_here, key=lambda d: -d["score"]):
            ious = [overlap(det["bbox"], b, False) for b in single]
            best = ious.index(max(ious)) if ious else None
            if best is not None and ious[best] >= 0.5 and best not in taken:
                taken.add(best)
                entries.setdefault(c, []).append((det["score"], 1.0))
                continue
            ioas = [overlap(det["bbox"], b, True) for b in group]
            if ioas and max(ioas) >= 0.5:
                g = ioas.index(max(ioas))
                group_best[g] = max(group_best.get(g, 0.0), det["score"])
                continue
            entries.setdefault(c, []).append((det["score"], 0.0))
        entries.setdefault(c, []).extend((s, 1.0) for s in group_best.values())
    counts: dict = {}
    for (_, c), here in truth.items():
        counts[c] = counts.get(c, 0) + len(here)
    names = {c["id"]: c["name"] for c in gt["categories"]}
    return {names[c]: average_precision(np.array([s for s, _ in entries.get(c, [])]),
                                        np.array([t for _, t in entries.get(c, [])]), n) for c, n in counts.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_the_protocol_computed_one_image_and_class_at_a_time(seed: int) -> None:
    gt, dets = _random_case(seed)
    expected = _by_definition(gt, dets)
    result = openimages_eval(gt, dets, openimages_hierarchy())
    assert result["per_class"] == pytest.approx(expected, abs=1e-12)
    assert result["AP50"] == pytest.approx(sum(expected.values()) / len(expected), abs=1e-12)
    assert len(expected) >= 8 and 0.1 < result["AP50"] < 0.9
