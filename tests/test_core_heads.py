"""The cosine classifier head (eq. 5) with hand-set weights."""

import math

import pytest
import torch

from scaledet.heads import MAX_CANDIDATES, CosineClassifier, ScaleDetPredictor, select_detections


def identity_head(tau: float = 0.02) -> CosineClassifier:
    head = CosineClassifier(in_features=2, embed_dim=2, tau=tau)
    with torch.no_grad():
        head.projection.weight.copy_(torch.eye(2))
        head.projection.bias.zero_()
    return head


def test_cosines_of_non_unit_inputs():
    head = identity_head()
    cos = head(torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0], [0.0, 2.0], [-5.0, 0.0]]))
    assert cos.shape == (1, 3)
    assert cos[0].tolist() == pytest.approx([0.6, 0.8, -0.6], abs=1e-6)


def test_bias_starts_at_prior_and_logits_scale_by_one_over_tau():
    head = identity_head(tau=0.02)
    assert head.bias.item() == pytest.approx(-math.log(99.0), abs=1e-6)
    assert head.scores(torch.zeros(1, 1)).item() == pytest.approx(0.01, abs=1e-6)
    assert head.logits(torch.tensor([[0.6]])).item() == pytest.approx(30.0 - math.log(99.0), abs=1e-4)


def test_vocabulary_is_a_forward_argument():
    head = identity_head()
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert head(features, torch.randn(7, 2)).shape == (2, 7)
    assert head(features, torch.randn(1, 2)).shape == (2, 1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"prior_prob": 0.0}, r"prior_prob must be in \(0, 1\), got 0.0"),
    ({"prior_prob": 1.0}, r"prior_prob must be in \(0, 1\), got 1.0"),
    ({"prior_prob": 1.5}, r"prior_prob must be in \(0, 1\), got 1.5"),
    ({"tau": 0.0}, r"tau must be positive, got 0.0"),
])
def test_bad_hyperparameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=rf"^{message}$"):
        CosineClassifier(4, 4, **kwargs)


def test_each_region_and_each_label_is_normalised_on_its_own():
    # two regions of different lengths, labels given in float64 (e.g. read from a cache): cosines, float32
    head = identity_head()
    labels = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    cos = head(torch.tensor([[3.0, 4.0], [0.0, 10.0]]), labels)
    assert cos.dtype == torch.float32
    assert cos.tolist() == [pytest.approx([0.6, 0.8], abs=1e-6), pytest.approx([0.0, 1.0], abs=1e-6)]


def test_predictor_flattens_region_features():
    predictor = ScaleDetPredictor(in_features=6, embed_dim=3, tau=0.05, prior_prob=0.2)
    cos, deltas = predictor(torch.randn(4, 2, 3), torch.randn(5, 3))
    assert cos.shape == (4, 5) and deltas.shape == (4, 4) and cos.abs().max() <= 1 + 1e-6
    assert predictor.classifier.tau == 0.05 and predictor.classifier.projection.out_features == 3
    assert predictor.classifier.bias.item() == pytest.approx(-math.log(0.8 / 0.2), abs=1e-6)


def test_select_detections_thresholds_drops_tiny_boxes_and_suppresses_per_label():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0],      # region 0
                          [1.0, 0.0, 11.0, 10.0],      # region 1: IoU 90 / 110 with region 0
                          [20.0, 20.0, 20.005, 30.0],  # region 2: 0.005 wide, dropped
                          [30.0, 30.0, 30.5, 30.5]])   # region 3: small but kept
    scores = torch.tensor([[0.9, 0.3], [0.8, 0.5], [0.95, 0.6], [0.25, 0.7]])
    out = select_detections(scores, boxes, score_thresh=0.25, nms_thresh=0.5, detections_per_image=10)
    # above 0.25 (0.25 itself is not): (0,0) .9 (0,1) .3 (1,0) .8 (1,1) .5 (2,*) dropped (3,1) .7; label 0: region 1
    # is suppressed by region 0; label 1: region 0 by region 1, region 3 overlaps neither; other labels' boxes
    # never suppress
    assert out["scores"].tolist() == pytest.approx([0.9, 0.7, 0.5])
    assert out["labels"].tolist() == [0, 1, 1]
    assert torch.equal(out["boxes"], boxes[[0, 3, 1]])
    best = select_detections(scores, boxes, score_thresh=0.25, nms_thresh=0.5, detections_per_image=2)
    assert best["scores"].tolist() == pytest.approx([0.9, 0.7]) and set(best) == {"boxes", "scores", "labels"}


def test_select_detections_keeps_the_best_candidates_before_nms():
    # 1200 disjoint boxes above the threshold: only the best MAX_CANDIDATES reach NMS
    corners = torch.arange(1200, dtype=torch.float32).unsqueeze(1) * 20
    boxes = torch.cat([corners, torch.zeros(1200, 1), corners + 10, torch.full((1200, 1), 10.0)], dim=1)
    scores = torch.linspace(0.2, 0.9, 1200).unsqueeze(1)
    out = select_detections(scores, boxes, score_thresh=0.1, nms_thresh=0.5, detections_per_image=5000)
    assert MAX_CANDIDATES == 1000 and len(out["scores"]) == 1000
    assert torch.equal(out["scores"], scores[200:, 0].flip(0)) and out["labels"].unique().tolist() == [0]
