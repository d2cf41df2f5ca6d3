"""CenterNet2 (model.detector=centernet2): the CenterNet first stage's targets and losses, the cascade's stage
labels, the probabilistic score sqrt(class x object), shapes at 1 / 80 / 2,249 labels, the vocabulary swap, a
short training run and the detector-name check. Expected numbers are worked out by hand in the comments."""

from __future__ import annotations

import math

import pytest
import torch

import scaledet.cascade as cascade_module
from scaledet.cascade import CascadeRoIHeads, final_scores
from scaledet.centernet import (
    SIZES_OF_INTEREST,
    STRIDES,
    CenterNetProposals,
    centernet_targets,
    giou_loss,
    heatmap_focal_loss,
    location_grid,
)
from scaledet.centernet2 import CenterNet2Detector
from scaledet.config import ModelConfig
from scaledet.detector import build_detector, check_detector
from scaledet.errors import ConfigError
from scaledet.labels import LabelSpace

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread

CFG = ModelConfig(detector="centernet2", backbone="tiny", weights=None, fpn_channels=32, representation_size=32,
                  min_size_test=128, max_size_test=128, proposal_convs=1, box_batch_size_per_image=64,
                  detections_per_image=20)

# level shapes of a 128 x 128 image on P3-P7 (strides 8 .. 128) and where each level starts in the flat order
SHAPES_128 = [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
OFFSETS_128 = [0, 256, 256 + 64, 256 + 64 + 16, 256 + 64 + 16 + 4]  # 0, 256, 320, 336, 340; 341 locations


def _space(n: int, dataset: str = "d", dim: int = 8, seed: int = 0) -> LabelSpace:
    g = torch.Generator().manual_seed(seed)
    return LabelSpace.from_embeddings([f"{dataset}{i}" for i in range(n)], torch.randn(n, dim, generator=g), dataset)


def _batch(labels: tuple[int, int] = (2, 0)):
    images = [torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 70.0, 90.0], [60.0, 50.0, 120.0, 110.0]]),
                "labels": torch.tensor(list(labels))},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    return images, targets


def _total(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(v for k, v in losses.items() if k.startswith("loss"))


# ---------------------------------------------------------------------------------------------------- 1. targets


def test_location_grid_centres_strides_and_levels():
    points, strides, levels = location_grid(SHAPES_128, torch.device("cpu"))
    assert points.shape == (341, 2) and strides.shape == (341,) and levels.shape == (341,)
    # P3 location (x=7, y=6) is flat index 6*16 + 7 = 103, centre (7*8 + 4, 6*8 + 4) = (60, 52)
    assert points[103].tolist() == [60.0, 52.0] and strides[103] == 8 and levels[103] == 0
    # P4 location (x=3, y=3) is 256 + 3*8 + 3 = 283, centre (3*16 + 8, 3*16 + 8) = (56, 56)
    assert points[283].tolist() == [56.0, 56.0] and strides[283] == 16 and levels[283] == 1
    # the single P7 location is the last one, centre (64, 64)
    assert points[340].tolist() == [64.0, 64.0] and strides[340] == 128 and levels[340] == 4


def test_heatmap_and_regression_targets_hand_computed():
    # a 120 x 90 box: diagonal sqrt(120^2 + 90^2) = 150, half 75 -> in P3's [0, 80] and P4's [64, 160] (the
    # overlapping range 64-80), not in P5's [128, 320]; centre ((3 + 123) / 2, (6 + 96) / 2) = (63, 51)
    box = torch.tensor([[3.0, 6.0, 123.0, 96.0]])
    assert SIZES_OF_INTEREST[0][1] == 80.0 and SIZES_OF_INTEREST[1][0] == 64.0 and STRIDES[:2] == (8, 16)
    positives, heat, reg = centernet_targets(box, SHAPES_128)
    assert heat.shape == (341,) and reg.shape == (341, 4)
    # P3: cell (floor(63/8), floor(51/8)) = (7, 6) -> 6*16 + 7 = 103; P4: (floor(63/16), floor(51/16)) = (3, 3)
    # -> 256 + 3*8 + 3 = 283; no other level is in charge
    assert positives.tolist() == [103, 283]

    # heatmap: exactly 1 at the centre's own location, on every level (the heatmap is not restricted by level)
    p5_centre = OFFSETS_128[2] + 1 * 4 + 1  # P5 cell (floor(63/32), floor(51/32)) = (1, 1) -> 320 + 5 = 325
    assert heat[103].item() == 1.0 and heat[283].item() == 1.0 and heat[p5_centre].item() == 1.0
    # neighbour P3 (x=8, y=6), centre (68, 52): d^2 = (68-63)^2 + (52-51)^2 = 25 + 1 = 26;
    # delta = 0.2/1.8 = 1/9, r^2 = max(2 * (1/81) * 120*90, 16) = 21600/81 = 266.666...;
    # d^2 / r^2 = 26 * 81 / 21600 = 0.0975, exp(-0.0975) = 0.9071023415558017
    assert heat[104].item() == pytest.approx(0.9071023415558017, rel=1e-6)
    # P3 (x=10, y=6), centre (84, 52): d^2 = 21^2 + 1 = 442, 442 * 81 / 21600 = 1.6575, exp(-1.6575) = 0.190614922
    assert heat[106].item() == pytest.approx(0.19061492223155038, rel=1e-6)
    # far away, P3 (x=0, y=15), centre (4, 124): d^2 = 59^2 + 73^2 = 8810, /266.67 = 33.0 -> e^-33 < 1e-4 -> 0
    assert heat[15 * 16 + 0].item() == 0.0

    # regression (l, t, r, b) / stride at the centre location: P3 centre (60, 52):
    # (60-3, 52-6, 123-60, 96-52) / 8 = (57, 46, 63, 44) / 8 = (7.125, 5.75, 7.875, 5.5)
    assert reg[103].tolist() == [7.125, 5.75, 7.875, 5.5]
    # P4 centre (56, 56): (53, 50, 67, 40) / 16 = (3.3125, 3.125, 4.1875, 2.5)
    assert reg[283].tolist() == [3.3125, 3.125, 4.1875, 2.5]
    # in the 3x3 window and inside the box: P3 (8, 6), centre (68, 52): (65, 46, 55, 44) / 8
    assert reg[104].tolist() == [8.125, 5.75, 6.875, 5.5]
    # outside the 3x3 window: P3 (10, 6) is 20 px > 8 px from the centre cell -> regresses nothing
    assert reg[106].tolist() == [-1.0, -1.0, -1.0, -1.0]
    # P5's centre location is in the window and the box but P5 is not in charge of a half diagonal of 75 -> -1
    assert reg[p5_centre].tolist() == [-1.0, -1.0, -1.0, -1.0]
    # exactly 3x3 on P3 and 3x3 on P4 regress: (63, 51) has its P4 window cells x in 2..4, y in 2..4, all inside
    assert int((reg.min(dim=1).values >= 0).sum()) == 9 + 9


def test_small_box_uses_the_minimum_radius():
    # a 10 x 10 box: 2 * (1/81) * 100 = 2.47 < 16 -> r^2 = 16; half diagonal 7.07 -> P3 only
    positives, heat, _ = centernet_targets(torch.tensor([[40.0, 40.0, 50.0, 50.0]]), SHAPES_128)
    # centre (45, 45), P3 cell (5, 5) -> 5*16 + 5 = 85
    assert positives.tolist() == [85]
    assert heat[85].item() == 1.0
    # P3 (6, 5), centre (52, 44): d^2 = 7^2 + 1^2 = 50, exp(-50 / 16) = exp(-3.125) = 0.0439369336
    assert heat[86].item() == pytest.approx(0.04393693362340742, rel=1e-6)


def test_targets_of_an_image_without_boxes():
    positives, heat, reg = centernet_targets(torch.zeros(0, 4), SHAPES_128)
    assert positives.numel() == 0
    assert heat.shape == (341,) and torch.equal(heat, torch.zeros(341))
    assert reg.shape == (341, 4) and torch.equal(reg, torch.full((341, 4), -1.0))


# ------------------------------------------------------------------------------------------------ 2. the losses


def test_heatmap_focal_loss_hand_computed():
    # sigmoid(ln 3) = 0.75, sigmoid(0) = 0.5, sigmoid(ln 9) = 0.9, sigmoid(-ln 3) = 0.25, sigmoid(-30) -> clamp 1e-4
    logits = torch.tensor([math.log(3.0), 0.0, math.log(9.0), -math.log(3.0), -30.0])
    targets = torch.tensor([1.0, 0.5, 0.0, 0.0, 1.0])
    positives = torch.tensor([0, 4])
    pos, neg = heatmap_focal_loss(logits, targets, positives)
    # pos = -0.25 * [log(0.75) * 0.25^2 + log(1e-4) * (1 - 1e-4)^2]
    #     = -0.25 * [-0.0179801295 + -9.2084983960] = 2.3066196314
    assert pos.item() == pytest.approx(2.306619631383357, rel=1e-5)
    # neg = -0.75 * [log(1 - 0.5) * 0.5^2 * (1 - 0.5)^4 + log(1 - 0.25) * 0.25^2 * 1^4]
    #     = -0.75 * [-0.0108304247 + -0.0179801295] = 0.0216079157
    # (location 2, p = 0.9 >= 0.85, is ignored: it would add -0.75 * log(0.1) * 0.81 = 1.3988; locations 0 and 4
    # have target 1 so (1 - t)^4 = 0)
    assert neg.item() == pytest.approx(0.02160791566836409, rel=1e-5)


def test_giou_loss_hand_computed_with_smoothing():
    pred = torch.tensor([[2.0, 2.0, 2.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 1.0, 1.0, 3.0]])
    # pair 0: areas 4*4 = 16 and 4*4 = 16; inter (1+2)*(1+2) = 9; union 16+16-9 = 23; enclosing (2+3)*(2+3) = 25
    #   giou = (9+1)/(23+1) - (25-23)/25 = 0.416667 - 0.08 = 0.336667 -> 1 - giou = 0.663333
    #   (without the +1 smoothing it would be 1 - (9/23 - 0.08) = 0.688696)
    # pair 1: areas (1+3)*(2+4) = 24 and (2+1)*(1+3) = 12; inter (1+1)*(1+3) = 8; union 28; enclosing (2+3)*(2+4) = 30
    #   giou = 9/29 - 2/30 = 0.310345 - 0.066667 = 0.243678 -> 1 - giou = 0.756322
    assert giou_loss(pred[:1], target[:1]).item() == pytest.approx(0.6633333333333333, rel=1e-6)
    assert giou_loss(pred, target).item() == pytest.approx(0.6633333333333333 + 0.7563218390804598, rel=1e-6)
    # identical boxes: (48+1)/(48+1) - 0 = 1 -> 0
    same = torch.tensor([[2.0, 3.0, 4.0, 5.0]])
    assert giou_loss(same, same).item() == pytest.approx(0.0, abs=1e-6)


def test_proposals_decode_distances_and_score_sqrt_likelihood():
    head = CenterNetProposals(channels=32, convs=0).eval()
    # two levels, P3 2x2 and P4 1x1; every location below the 1e-4 likelihood threshold except two
    heat_p3 = torch.full((1, 1, 2, 2), -20.0)
    heat_p3[0, 0, 1, 0] = 0.0  # P3 (x=0, y=1): likelihood 0.5, centre (4, 12)
    heat_p4 = torch.full((1, 1, 1, 1), math.log(3.0))  # P4 (0, 0): likelihood 0.75, centre (8, 8)
    dist_p3 = torch.zeros(1, 4, 2, 2)
    dist_p3[0, :, 1, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    dist_p4 = torch.full((1, 4, 1, 1), 0.5)
    boxes, scores = head.proposals([heat_p3, heat_p4], [dist_p3, dist_p4], [(16, 16)])
    # P4: (8 - 0.5*16, 8 - 8, 8 + 8, 8 + 8) = (0, 0, 16, 16), score sqrt(0.75) = 0.8660254
    # P3: (4 - 1*8, 12 - 2*8, 4 + 3*8, 12 + 4*8) = (-4, -4, 28, 44), score sqrt(0.5) = 0.7071068
    # IoU 256 / (32*48) = 1/6 < 0.9: both survive NMS, best first
    assert boxes[0].tolist() == [[0.0, 0.0, 16.0, 16.0], [-4.0, -4.0, 28.0, 44.0]]
    assert scores[0].tolist() == pytest.approx([0.8660254037844386, 0.7071067811865476], rel=1e-6)


# ------------------------------------------------------------------------------------------ 3. cascade labels


def test_cascade_stage_labels_follow_the_stage_thresholds():
    heads = CascadeRoIHeads(CFG, channels=32, embed_dim=8, federated_classes=None)
    assert heads.ious == (0.6, 0.7, 0.8)
    gt = torch.tensor([[0.0, 0.0, 100.0, 100.0], [200.0, 200.0, 250.0, 250.0]])
    target = {"boxes": gt, "labels": torch.tensor([3, 1])}
    boxes = torch.tensor([
        [0.0, 0.0, 100.0, 55.0],  # IoU with gt0: 5500 / 10000 = 0.55
        [0.0, 0.0, 100.0, 65.0],  # 0.65
        [0.0, 0.0, 100.0, 75.0],  # 0.75
        [0.0, 0.0, 100.0, 85.0],  # 0.85
        [20.0, 0.0, 120.0, 100.0],  # inter 80*100 = 8000, union 10000 + 10000 - 8000 = 12000 -> 0.6667
        [0.0, 0.0, 100.0, 70.0],  # exactly 0.7: the stage-1 threshold counts as foreground
        [200.0, 200.0, 250.0, 245.0],  # IoU with gt1: 2250 / 2500 = 0.9; 0 with gt0
        [300.0, 0.0, 350.0, 50.0],  # overlaps nothing
    ])
    expected = {
        0: [-1, 3, 3, 3, 3, 3, 1, -1],  # IoU >= 0.6
        1: [-1, -1, 3, 3, -1, 3, 1, -1],  # IoU >= 0.7
        2: [-1, -1, -1, 3, -1, -1, 1, -1],  # IoU >= 0.8
    }
    for k, labels in expected.items():
        got, matched = heads.label(k, boxes, target)
        assert got.tolist() == labels, f"stage {k}"
        for i, label in enumerate(labels):
            if label == 3:
                assert matched[i].tolist() == gt[0].tolist()
            elif label == 1:
                assert matched[i].tolist() == gt[1].tolist()


def test_cascade_labels_without_ground_truth_are_background():
    heads = CascadeRoIHeads(CFG, channels=32, embed_dim=8, federated_classes=None)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 50.0, 60.0]])
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    for k in range(3):
        labels, matched = heads.label(k, boxes, empty)
        assert labels.tolist() == [-1, -1] and matched.shape == (2, 4)


# ------------------------------------------------------------------------------------- 4. probabilistic score


def test_final_scores_hand_values():
    stage_scores = [torch.tensor([[0.2, 0.1], [1.0, 0.5]]),
                    torch.tensor([[0.4, 0.1], [1.0, 0.3]]),
                    torch.tensor([[0.6, 0.1], [1.0, 0.1]])]
    proposal_scores = torch.tensor([0.81, 0.25])
    # region 0: means (0.4, 0.1) -> sqrt(0.4 * 0.81) = sqrt(0.324) = 0.569210, sqrt(0.1 * 0.81) = 0.284605
    # region 1: means (1.0, 0.3) -> sqrt(1.0 * 0.25) = 0.5, sqrt(0.3 * 0.25) = sqrt(0.075) = 0.273861
    got = final_scores(stage_scores, proposal_scores)
    assert got.shape == (2, 2)
    assert got.flatten().tolist() == pytest.approx(
        [0.5692099788303083, 0.28460498941515416, 0.5, 0.27386127875258304], rel=1e-6)


def test_detector_scores_are_sqrt_of_mean_stage_sigmoid_times_proposal_score(monkeypatch):
    torch.manual_seed(0)
    model = build_detector(ModelConfig(**{**CFG.__dict__, "score_thresh": 0.0}), _space(4)).eval()
    assert isinstance(model, CenterNet2Detector)
    seen: dict[str, list] = {"cos": [], "select": []}
    model.proposal_generator.register_forward_hook(lambda m, i, o: seen.__setitem__("proposals", o))
    for predictor in model.roi_heads.box_predictors:
        predictor.classifier.register_forward_hook(lambda m, i, o: seen["cos"].append(o.detach()))
    original = cascade_module.select_detections

    def spy(scores, boxes, *args):
        seen["select"].append(boxes.clone())
        return original(scores, boxes, *args)

    monkeypatch.setattr(cascade_module, "select_detections", spy)
    images, _ = _batch()
    with torch.no_grad():
        out = model(images)  # 128 px images at min/max size 128: not resized, boxes come back unchanged
    _, proposal_scores, _ = seen["proposals"]
    assert len(seen["cos"]) == 3 and len(seen["select"]) == 2
    # each stage's class score is the cosine classifier's sigmoid(cos / tau + bias)
    sig = [torch.sigmoid(cos / p.classifier.tau + p.classifier.bias.detach())
           for cos, p in zip(seen["cos"], model.roi_heads.box_predictors)]
    checked, start = 0, 0
    for image, (out_i, boxes_i, pscore_i) in enumerate(zip(out, seen["select"], proposal_scores)):
        assert len(boxes_i) == len(pscore_i)
        assert len(out_i["scores"]) > 0
        # class scores <= 1, so no score exceeds sqrt(the best object likelihood)
        assert (out_i["scores"] <= pscore_i.max().sqrt() + 1e-6).all()
        for box, label, score in zip(out_i["boxes"], out_i["labels"], out_i["scores"]):
            regions = torch.where((boxes_i == box).all(dim=1))[0]
            assert len(regions) > 0, f"image {image}: output box not among the last stage's boxes"
            expected = [math.sqrt((sig[0][start + r, label] + sig[1][start + r, label] + sig[2][start + r, label])
                                  .item() / 3 * pscore_i[r].item()) for r in regions.tolist()]
            assert any(score.item() == pytest.approx(e, rel=1e-5) for e in expected), (score, expected)
            checked += 1
        start += len(boxes_i)
    assert checked >= 10


# -------------------------------------------------------------------------------- 5. shapes at 1 / 80 / 2,249


@pytest.mark.parametrize("n", [1, 80, 2249])
def test_losses_gradients_and_outputs_at_vocabulary_sizes(n):
    torch.manual_seed(0)
    cfg = ModelConfig(**{**CFG.__dict__, "score_thresh": 0.0})  # every (region, label) pair is a candidate
    model = build_detector(cfg, _space(n)).train()
    losses = model(*_batch(labels=(0, n - 1)))
    keys = {"loss_proposal_pos", "loss_proposal_neg", "loss_proposal_box", "parts/hard", "parts/soft"}
    keys |= {f"loss_{part}_stage{k}" for part in ("classifier", "box_reg") for k in range(3)}
    assert set(losses) == keys
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    assert losses["loss_proposal_pos"] > 0 and losses["loss_proposal_box"] > 0
    _total(losses).backward()
    for k, predictor in enumerate(model.roi_heads.box_predictors):
        grad = predictor.classifier.projection.weight.grad
        assert grad is not None and grad.abs().sum() > 0, f"stage {k}"
    assert model.proposal_generator.head.heatmap.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(_batch()[0])
    assert len(out) == 2
    for o in out:
        d = len(o["scores"])
        assert 0 < d <= cfg.detections_per_image
        if n >= 80:  # far more than 20 (box, label) pairs survive the per-label NMS: the cap decides
            assert d == cfg.detections_per_image
        assert o["boxes"].shape == (d, 4) and o["scores"].shape == (d,) and o["labels"].shape == (d,)
        assert o["labels"].dtype == torch.long and int(o["labels"].min()) >= 0 and int(o["labels"].max()) < n
        assert ((o["scores"] > 0) & (o["scores"] <= 1)).all()
        assert (o["boxes"][:, 2:] >= o["boxes"][:, :2]).all() and o["boxes"].min() >= 0 and o["boxes"].max() <= 128


# ---------------------------------------------------------------------------------------- 6. vocabulary swap


def _same(a: list[dict], b: list[dict]) -> bool:
    return all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in ("boxes", "scores", "labels"))


def test_vocabulary_swap_equals_a_model_built_on_the_subset():
    big = _space(5)
    # labels 3 and 1 of the big space, in that order, as their own space (the very same embedding rows)
    small = LabelSpace.from_embeddings(["d3", "d1"], big.embeddings[[3, 1]], "d")
    cfg = ModelConfig(**{**CFG.__dict__, "score_thresh": 0.0})  # no empty outputs, whatever the random weights
    torch.manual_seed(0)
    model = build_detector(cfg, big).eval()
    direct = build_detector(cfg, small).eval()
    direct.load_state_dict(model.state_dict())
    images = _batch()[0]
    with torch.no_grad():
        before = model(images)
        expected = direct(images)
        with model.scoring(small, detections_per_image=3):
            inside = model(images)
            assert model.label_space is small and model.roi_heads.detections_per_img == 3
        after = model(images)
        model.set_label_space(small)
        swapped = model(images)
    assert any(int(o["labels"].max()) >= 2 for o in before)  # the 5-label outputs use labels beyond the subset
    assert all(int(o["labels"].max()) <= 1 for o in expected)
    assert _same(swapped, expected)
    # inside the block: the subset vocabulary, capped at 3 detections (the best 3 of the direct model's)
    assert all(len(o["scores"]) == 3 for o in inside)
    assert all(torch.equal(o["scores"], e["scores"][:3]) and torch.equal(o["labels"], e["labels"][:3])
               for o, e in zip(inside, expected))
    # after the block: the original vocabulary and cap are back
    assert _same(after, before)


def test_scoring_restores_the_vocabulary():
    big, small = _space(5), _space(2, "other", seed=1)
    model = build_detector(CFG, big)
    with model.scoring(small, detections_per_image=7, score_thresh=0.3):
        assert model.roi_heads.label_embeddings.shape == (2, 8)
    assert model.label_space is big
    assert torch.equal(model.roi_heads.label_embeddings, big.embeddings)
    assert model.roi_heads.detections_per_img == CFG.detections_per_image
    assert model.roi_heads.score_thresh == CFG.score_thresh


# ---------------------------------------------------------------------------------------------- 7. training


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    model = build_detector(CFG, _space(3)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, targets = _batch()
    history = []
    for _ in range(30):
        total = _total(model(images, targets))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    assert all(math.isfinite(v) for v in history)
    # seen: 45.2 -> 10.3 (ratio 0.23)
    assert history[-1] < 0.5 * history[0], history


# ----------------------------------------------------------------------------------------- 8. detector name


def test_misspelled_detector_name_is_a_config_error():
    cfg = ModelConfig(**{**CFG.__dict__, "detector": "centernet"})
    with pytest.raises(ConfigError, match=r"model\.detector.*did you mean 'centernet2'"):
        check_detector(cfg)
    with pytest.raises(ConfigError, match=r"model\.detector is 'centernet'.*expected one of faster_rcnn, centernet2"):
        build_detector(cfg, _space(2))


def test_a_checkpoint_of_the_other_detector_is_refused_naming_both(tmp_path):
    from scaledet.checkpoints import load_model_weights
    from scaledet.errors import CheckpointError

    faster = build_detector(ModelConfig(**{**CFG.__dict__, "detector": "faster_rcnn"}), _space(3))
    state = {"model": faster.state_dict(), "label_space": _space(3).to_state(),
             "config": {"model": {"detector": "faster_rcnn", "backbone": "tiny"}}}
    with pytest.raises(CheckpointError, match=r"the checkpoint's detector is 'faster_rcnn' \(model.detector\), "
                                              r"this model's is 'centernet2'"):
        load_model_weights(build_detector(CFG, _space(3)), state, where="ckpt.pt")


@pytest.mark.parametrize("backbone", ["effnet-lite0", "r50", "swin-t", "swin-b"])
def test_every_backbone_trains_and_detects(backbone):
    """The real architectures (random weights: none are needed to check the wiring) at 192 px, where P7 is 2 x 2
    (at 1 x 1 the tower's GroupNorm, one channel per group, would zero every gradient through P7)."""
    cfg = ModelConfig(**{**CFG.__dict__, "backbone": backbone, "min_size_test": 192, "max_size_test": 192})
    torch.manual_seed(0)
    model = build_detector(cfg, _space(3), load_weights=False).train()
    images = [torch.rand(3, 192, 192, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 120.0, 150.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[60.0, 30.0, 180.0, 90.0]]), "labels": torch.tensor([2])}]
    losses = model(images, targets)
    _total(losses).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.top_levels.p7.bias.grad is not None and model.top_levels.p7.bias.grad.abs().sum() > 0
    with torch.no_grad():
        out = model.eval()(images)
    assert [o["boxes"].shape[1] for o in out] == [4, 4] and all(len(o["boxes"]) <= 20 for o in out)


def test_mixed_precision_forward_and_backward_stay_finite():
    """The dtype handling of the AMP path (CUDA fp16 in training jobs), exercised on CPU with bfloat16 autocast:
    losses are float32 and finite, gradients reach every stage, detections come out in float32."""
    torch.manual_seed(0)
    model = build_detector(CFG, _space(3)).train()
    images, targets = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(images, targets)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values()), losses
    _total(losses).backward()
    assert all(p.classifier.projection.weight.grad.abs().sum() > 0 for p in model.roi_heads.box_predictors)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.eval()(images)
    assert all(o["boxes"].dtype == torch.float32 and o["scores"].dtype == torch.float32 for o in out)
