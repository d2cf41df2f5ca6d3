"""The paper's test-time protocol (§4.2): a dataset is scored with its own vocabulary (its slice of a joint label
space), so no other dataset's label takes one of its candidates or detection slots; and with its kind's settings
(scaledet.protocol): 100 detections per image for COCO-style sets, 300 for LVIS, whose federated AP agrees with the
reference `lvis` package on what the detector emits. Real images (ODinW) and an LVIS stand-in as the rehearsal
writes it; detectors at random init (the real architecture: what matters here is where the slots go)."""

from __future__ import annotations

import copy
import json
from collections import Counter

import lvis
import numpy as np
import pytest
import torch
from coco_fixtures import odinw_coco

from harness.acquire.standins import write_upstream_standin
from harness.catalog.upstream import load_upstream
from harness.workloads.scaledet.work import Source, score
from scaledet.config import ModelConfig
from scaledet.data import load_coco
from scaledet.detector import build_detector
from scaledet.evaluation import coco_eval
from scaledet.labels import LabelSpace, encode_label_space
from scaledet.metrics_lvis import lvis_eval
from scaledet.protocol import SCORING_SETTINGS, ScoringSettings, scoring_settings
from scaledet.text import MiniLMEncoder

SMALL = ModelConfig(backbone="effnet-lite0", weights=None, fpn_channels=64, representation_size=256,
                    min_size_test=320, max_size_test=533)
EVERY_PAIR = ScoringSettings("coco", 100, 0.0)  # no threshold: every image has far more than 100 candidate pairs


@pytest.fixture(scope="module")
def joint(tmp_path_factory):
    """Aquarium (7 labels) and Packages (1) concatenated, and a detector over the joint space."""
    tmp = tmp_path_factory.mktemp("joint")
    aquarium = load_coco(odinw_coco(tmp, "Aquarium", ["valid"], limit=4), name="aquarium")
    packages = load_coco(odinw_coco(tmp, "Packages", ["valid"], limit=4), name="packages")
    encoder = MiniLMEncoder()
    own = encode_label_space(aquarium.category_names, "aquarium", encoder)
    space = LabelSpace.concat([own, encode_label_space(packages.category_names, "packages", encoder)])
    torch.manual_seed(0)
    return {"aquarium": aquarium, "own": own, "space": space, "model": build_detector(SMALL, space, False).eval()}


def test_a_dataset_in_a_joint_vocabulary_keeps_every_detection_slot(joint):
    from scaledet.inference import predict

    model, aquarium, space = joint["model"], joint["aquarium"], joint["space"]
    found = predict(model, aquarium, space, settings=EVERY_PAIR)
    per_image = Counter(d["image_id"] for d in found)
    assert sorted(per_image.values()) == [100] * len(aquarium)  # the full 100 on every image
    assert model.label_space is space and model.roi_heads.detections_per_img == SMALL.detections_per_image
    # what scoring in the joint vocabulary does: the other dataset's label takes slots of the 100
    with torch.inference_mode(), model.scoring(space, 100, 0.0):
        from scaledet.data import read_image

        outputs = model([read_image(aquarium.image_root / img["file_name"]) for img in aquarium.images])
    packages_label = space.indices_of("packages")[0]
    assert sum(int((out["labels"] == packages_label).sum()) for out in outputs) > 0
    # the same model loaded with the dataset's vocabulary alone: the same detections, the same AP
    alone = build_detector(SMALL, joint["own"], False)
    alone.load_state_dict(model.state_dict())
    reference = predict(alone.eval(), aquarium, settings=EVERY_PAIR)
    assert found == reference
    assert coco_eval(aquarium.source, found)["AP"] == coco_eval(aquarium.source, reference)["AP"]


def test_the_scoring_settings_per_kind():
    assert {k: (s.detections_per_image, s.score_thresh) for k, s in SCORING_SETTINGS.items()} == {
        "coco": (100, 0.05), "lvis": (300, 0.0001), "openimages": (300, 0.0001)}
    with pytest.raises(Exception, match="unknown dataset kind \\(metric\\) 'lviss' \\(did you mean 'lvis'\\?\\)"):
        scoring_settings("lviss")


def test_lvis_is_scored_with_300_detections_and_agrees_with_the_lvis_package(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "float", float, raising=False)  # lvis 0.5.3 still uses the removed alias
    root = write_upstream_standin("lvis", tmp_path / "lvis", images_per_split=4, size=(320, 240))
    roots = {"lvis": root, "coco": tmp_path / "coco"}
    records = load_upstream("lvis", "val", roots)
    dataset = records.dataset
    space = LabelSpace.from_embeddings(dataset.category_names, torch.randn(len(dataset.category_ids), 64,
                                       generator=torch.Generator().manual_seed(0)), "lvis")
    torch.manual_seed(0)
    model = build_detector(SMALL, space, False).eval()
    source = Source("lvis", tuple(dataset.category_names), None, None, dataset, (records.annotation_file,),
                    "stand-in", "lvis")
    found = score(model, source, space, "cpu")
    assert found["scoring"] == {"kind": "lvis", "detections_per_image": 300, "score_thresh": 0.0001,
                                "inference": {"batch_size": 1, "workers": 0, "amp": "off"}}  # auto, on a CPU
    from scaledet.inference import predict

    detections = predict(model, dataset, space, settings=scoring_settings("lvis"))
    per_image = Counter(d["image_id"] for d in detections)
    assert max(per_image.values()) == 300 and min(per_image.values()) > 100  # more than COCO's 100 per image
    assert found["AP"] == lvis_eval(dataset.source, detections, max_dets=300)["AP"]
    # the detector is untrained (AP 0): turn some of its detections into hits (the ground truth's class and box,
    # shifted by 1 px) and, above each, a miss of the same class, at the scores it gave them, so that the
    # comparison below covers matching
    by_image: dict[int, list[int]] = {}
    for index, det in enumerate(detections):
        by_image.setdefault(det["image_id"], []).append(index)
    for image_id, truths in dataset.annotations.items():
        for k, ann in enumerate(truths):
            x, y, w, h = ann["bbox"]
            hit, miss = (detections[by_image[image_id][at + 7 * k]] for at in (150, 20))
            hit.update(category_id=ann["category_id"], bbox=[x + 1, y, w, h])
            miss.update(category_id=ann["category_id"], bbox=[x + w + 2, y + h + 2, 3, 3])
    ours = lvis_eval(dataset.source, detections, max_dets=300)
    assert 0.05 < ours["AP"] < 0.95
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(dataset.source))
    reference = lvis.LVISEval(lvis.LVIS(str(gt)), lvis.LVISResults(lvis.LVIS(str(gt)), copy.deepcopy(detections),
                                                                   300), "bbox")
    reference.run()
    for key in ("AP", "AP50", "AP75", "APr", "APc", "APf"):
        assert ours[key] == pytest.approx(reference.results[key], abs=1e-12), key
