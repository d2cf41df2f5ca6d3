"""The federated loss option (Detic / CenterNet2's LVIS recipe): class choice, masked BCE by hand, detector, engine."""

from __future__ import annotations

import math

import pytest
import torch
from coco_fixtures import odinw_coco
from engine_fixtures import tiny_config

from scaledet.config import ModelConfig
from scaledet.data import load_coco
from scaledet.detector import build_detector
from scaledet.engine import class_image_counts, train
from scaledet.errors import ConfigError
from scaledet.labels import LabelSpace
from scaledet.losses import (
    federated_classes,
    federated_hard_label_loss,
    hard_label_loss,
    scaledet_classification_loss,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# 3 regions x 5 labels; with tau = 0.5 and bias -1 the logits are cos / 0.5 - 1:
#   region 0 (label 2): [ 0, -2, -0.5, -1,  1  ]
#   region 1 (label 0): [-1,  0, -1.5,  0, -1  ]
#   region 2 (background): [-2, -1,  0,   -3, -0.5]
COS = torch.tensor([[0.5, -0.5, 0.25, 0.0, 1.0],
                    [0.0, 0.5, -0.25, 0.5, 0.0],
                    [-0.5, 0.0, 0.5, -1.0, 0.25]])
LABELS = torch.tensor([2, 0, -1])
TARGETS = torch.tensor([[0.0, 0, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])


def test_masked_bce_by_hand():
    # columns 0, 2, 3 only; BCE(x, 1) = softplus(-x), BCE(x, 0) = softplus(x); summed, divided by 3 regions
    expected = (softplus(0) + softplus(0.5) + softplus(-1)      # region 0: label 2 is its target
                + softplus(1) + softplus(-1.5) + softplus(0)    # region 1: label 0 is its target
                + softplus(-2) + softplus(0) + softplus(-3)     # region 2: background, all targets 0
                ) / 3
    assert expected == pytest.approx(1.68565685, abs=1e-8)
    loss = federated_hard_label_loss(COS, TARGETS, torch.tensor([0, 2, 3]), tau=0.5, bias=-1.0)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # through the classification loss: ground truth {0, 2} + the only negative with weight (3), 3 classes in all;
    # the soft term (eq. 7) is unchanged, over all 5 labels of the 2 foreground regions
    cos = COS.clone().requires_grad_()
    sim = torch.eye(5)
    out = scaledet_classification_loss(cos, LABELS, sim, tau=0.5, soft_weight=10.0, bias=-1.0,
                                       freq_weight=torch.tensor([0.0, 0, 0, 2, 0]), fed_num_classes=3)
    soft = ((0.5**2 + 0.5**2 + 0.75**2 + 0 + 1) + (1 + 0.5**2 + 0.25**2 + 0.5**2 + 0)) / 10
    assert out.hard.item() == pytest.approx(expected, abs=1e-6)
    assert out.soft.item() == pytest.approx(soft, abs=1e-6)
    assert out.total.item() == pytest.approx(expected + 10 * soft, abs=1e-5)
    out.hard.backward()  # labels 1 and 4 are outside the chosen set: no gradient from the hard term
    assert cos.grad[:, [1, 4]].abs().sum() == 0 and cos.grad[:, [0, 2, 3]].abs().sum() > 0


def test_chosen_set_holds_the_ground_truth_and_has_the_right_size():
    n = 10
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        gt = torch.randint(-1, n, (int(torch.randint(0, 8, (1,), generator=g)),), generator=g)
        k = int(torch.randint(1, 12, (1,), generator=g))
        chosen = federated_classes(gt, torch.rand(n, generator=g), k)
        truth = set(gt[gt >= 0].tolist())
        assert truth <= set(chosen.tolist())
        assert chosen.tolist() == sorted(set(chosen.tolist()))  # sorted, no repeats
        assert len(chosen) == max(len(truth), min(k, n))  # more ground-truth labels than k are all kept


def test_all_weight_on_one_negative_picks_it():
    gt = torch.tensor([1, 4, 4, -1])
    weight = torch.zeros(8)
    weight[6] = 1.0
    weight[1] = 5.0  # a ground-truth label's weight does not matter: it is in the set anyway
    assert federated_classes(gt, weight, 3).tolist() == [1, 4, 6]
    # fewer weighted negatives than needed: the rest come from the weight-0 labels, size still 5
    chosen = federated_classes(gt, weight, 5).tolist()
    assert len(chosen) == 5 and {1, 4, 6} <= set(chosen)


def test_negatives_follow_the_frequency_weight_and_the_global_seed():
    torch.manual_seed(0)
    picks = [federated_classes(torch.tensor([-1]), torch.tensor([0.0, 9.0, 1.0]), 1).item() for _ in range(2000)]
    assert picks.count(0) == 0 and picks.count(1) / 2000 == pytest.approx(0.9, abs=0.03)
    gt, weight = torch.tensor([0, 3]), torch.rand(30, generator=torch.Generator().manual_seed(1))
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append([federated_classes(gt, weight, 8).tolist() for _ in range(5)])
    assert runs[0] == runs[1]
    assert len({tuple(r) for r in runs[0]}) > 1  # it does draw


def test_all_labels_chosen_equals_the_hard_label_loss_exactly():
    weight = torch.tensor([1.0, 2, 3, 4, 5])
    rng = torch.get_rng_state()
    for k in (5, 50):
        classes = federated_classes(LABELS, weight, k)
        assert classes.tolist() == [0, 1, 2, 3, 4]
        for bias in (0.0, torch.tensor(-1.5)):
            torch.testing.assert_close(federated_hard_label_loss(COS, TARGETS, classes, 0.02, bias),
                                       hard_label_loss(COS, TARGETS, 0.02, bias), rtol=0, atol=0)
        sim = torch.rand(5, 5, generator=torch.Generator().manual_seed(0))
        fed = scaledet_classification_loss(COS, LABELS, sim, freq_weight=weight, fed_num_classes=k)
        full = scaledet_classification_loss(COS, LABELS, sim)
        torch.testing.assert_close(tuple(fed), tuple(full), rtol=0, atol=0)
    assert torch.equal(torch.get_rng_state(), rng)  # nothing drawn when every label is in


def _batch():
    images = [torch.rand(3, 96, 96, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 60.0, 70.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.tensor([[20.0, 30.0, 90.0, 80.0]]), "labels": torch.tensor([5])}]
    return images, targets


def test_detector_needs_class_frequencies_then_trains():
    names = [f"c{i}" for i in range(6)]
    space = LabelSpace.from_embeddings(names, torch.randn(6, 16, generator=torch.Generator().manual_seed(0)))
    cfg = ModelConfig(backbone="tiny", weights=None, fpn_channels=32, representation_size=64,
                      federated_loss=True, federated_classes=3)
    torch.manual_seed(0)
    model = build_detector(cfg, space, load_weights=False).train()
    with pytest.raises(ConfigError, match=r"model.federated_loss is on but the detector has no class frequencies"):
        model(*_batch())
    with pytest.raises(ConfigError, match=r"one count per label \(6\)"):
        model.set_class_frequencies(torch.ones(5))
    model.set_class_frequencies(torch.tensor([4.0, 0, 9, 1, 16, 25]))
    assert torch.equal(model.roi_heads.freq_weight, torch.tensor([2.0, 0, 3, 1, 4, 5]))
    assert "roi_heads.freq_weight" not in model.state_dict()  # recomputed from the data, not checkpointed
    losses = model(*_batch())
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_classifier"].item() == pytest.approx(
        losses["parts/hard"].item() + 10 * losses["parts/soft"].item(), rel=1e-5)
    sum(v for k, v in losses.items() if k.startswith("loss")).backward()
    assert model.roi_heads.box_predictor.classifier.projection.weight.grad.abs().sum() > 0
    # frequencies count one label space: another one needs its own
    other = LabelSpace.from_embeddings([f"o{i}" for i in range(6)], torch.randn(6, 16), "other")
    model.set_label_space(other)
    with pytest.raises(ConfigError, match=r"model.federated_loss .* another label space"):
        model(*_batch())
    with pytest.raises(ConfigError, match=r"model.federated_classes must be >= 1"):
        build_detector(ModelConfig(backbone="tiny", weights=None, federated_loss=True, federated_classes=0), space,
                       load_weights=False)


def test_engine_counts_training_images_per_label_and_trains(tmp_path):
    sets = [load_coco(odinw_coco(tmp_path, "NorthAmericaMushrooms", ["train"]), name="mushrooms"),
            load_coco(odinw_coco(tmp_path, "Packages", ["train"]), name="packages")]
    space = LabelSpace.concat([
        LabelSpace.from_embeddings(ds.category_names, torch.randn(len(ds.category_names), 8,
                                                                  generator=torch.Generator().manual_seed(i)), ds.name)
        for i, ds in enumerate(sets)])
    assert space.names == ("CoW", "chanterelle", "package")
    # From the YOLO label files: Mushrooms' 41 training images hold CoW only (17) or chanterelle only (24);
    # all 19 Packages images hold packages (several hold two: images are counted, not boxes)
    assert sum(len(a) for a in sets[1].annotations.values()) > 19
    counts = torch.tensor([17.0, 24.0, 19.0], dtype=torch.float64)
    assert torch.equal(class_image_counts(sets, space), counts)
    extra = {"model__federated_loss": "true", "model__federated_classes": "2"}
    result = train(tiny_config(2, 2, **extra), sets, space, tmp_path / "a", device="cpu")
    assert result.step == 2 and all(math.isfinite(h["loss"]) for h in result.history)
    # sqrt of the counts (float32 on the CPU: its vectorised sqrt may differ from float64 in the last bit)
    torch.testing.assert_close(result.model.roi_heads.freq_weight, counts.sqrt().float(), rtol=1e-6, atol=0)
    # the draws follow the global RNG, which checkpoints restore: a resumed run ends with the same weights
    train(tiny_config(1, 1, **extra), sets, space, tmp_path / "b", device="cpu")
    resumed = train(tiny_config(2, 1, **extra), sets, space, tmp_path / "b", device="cpu")
    assert resumed.history[-1]["loss"] == result.history[-1]["loss"]
    a, b = result.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_federated_loss_defaults_no_bias_and_follows_a_per_label_bias():
    # columns 0, 2, 3 with tau 0.5 and no bias: logits region 0 [1, 0.5, 0], region 1 [0, -0.5, 1],
    # region 2 [-1, 1, -2]
    classes = torch.tensor([0, 2, 3])
    expected = (softplus(1) + softplus(-0.5) + softplus(0)
                + softplus(0) + softplus(-0.5) + softplus(1)
                + softplus(-1) + softplus(1) + softplus(-2)) / 3
    assert federated_hard_label_loss(COS, TARGETS, classes, tau=0.5).item() == pytest.approx(expected, abs=1e-6)
    # a bias per label (5 values) follows the chosen columns: labels 0, 2, 3 get -1, 0, +1
    bias = torch.tensor([-1.0, 7.0, 0.0, 1.0, 7.0])
    expected = (softplus(0) + softplus(-0.5) + softplus(1)
                + softplus(1) + softplus(-0.5) + softplus(2)
                + softplus(-2) + softplus(1) + softplus(-1)) / 3
    assert federated_hard_label_loss(COS, TARGETS, classes, tau=0.5, bias=bias).item() == pytest.approx(
        expected, abs=1e-6)
    with pytest.raises(ValueError, match=r"^classes must be \[k\], got \[1, 3\]$"):
        federated_hard_label_loss(COS, TARGETS, classes[None], tau=0.5)
    with pytest.raises(ValueError, match=r"^cos must be \[R, n\] and targets the same shape"):
        federated_hard_label_loss(COS, TARGETS[:2], classes, tau=0.5)


def test_federated_classes_bad_arguments():
    with pytest.raises(ValueError, match=r"^freq_weight must be \[n\], got \[2, 3\]$"):
        federated_classes(torch.tensor([0]), torch.ones(2, 3), 2)
    with pytest.raises(ValueError, match=r"^num_classes must be >= 1, got 0$"):
        federated_classes(torch.tensor([0]), torch.ones(5), 0)
    with pytest.raises(ValueError, match=r"^ground-truth label 5 is outside the 5 labels$"):
        federated_classes(torch.tensor([1, 5]), torch.ones(5), 3)
    assert federated_classes(torch.tensor([3, -1]), torch.ones(5), 1).tolist() == [3]  # one class is allowed
    assert federated_classes(torch.tensor([0, 0]), torch.tensor([0.0, 1, 0, 0]), 2).tolist() == [0, 1]


def test_default_federated_loss_covers_50_labels():
    cos = torch.zeros(1, 60, requires_grad=True)
    out = scaledet_classification_loss(cos, torch.tensor([7]), None, freq_weight=torch.ones(60))
    out.hard.backward()  # BCE at logit 0 has a gradient on every covered label
    assert int((cos.grad != 0).sum()) == 50 and cos.grad[0, 7] != 0


def test_enough_weighted_negatives_take_one_multinomial_draw():
    gt, weight = torch.tensor([1]), torch.tensor([0.0, 3.0, 1.0, 2.0, 0.0, 4.0])
    torch.manual_seed(11)
    chosen = federated_classes(gt, weight, 3)
    after = torch.get_rng_state()
    torch.manual_seed(11)
    drawn = torch.multinomial(torch.tensor([0.0, 0.0, 1.0, 2.0, 0.0, 4.0]), 2, replacement=False)
    assert chosen.tolist() == sorted([1, *drawn.tolist()])
    assert torch.equal(torch.get_rng_state(), after)  # nothing else drawn: the stream a resumed run replays


def test_weight_zero_negatives_fill_up_without_repeating_the_ground_truth():
    # no label has a weight: every negative comes from the uniform draw among the weight-0 labels
    for seed in range(20):
        torch.manual_seed(seed)
        chosen = federated_classes(torch.tensor([0, 1]), torch.zeros(6), 5).tolist()
        assert len(chosen) == 5 and len(set(chosen)) == 5 and {0, 1} <= set(chosen)
