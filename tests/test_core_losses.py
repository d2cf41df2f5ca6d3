"""Eq. 6-8 against values computed by hand (with math, not through the code under test)."""

import math

import pytest
import torch

from scaledet.heads import CosineClassifier
from scaledet.losses import hard_label_loss, scaledet_classification_loss, soft_label_loss


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


COS = torch.tensor([[0.5, -0.5], [0.0, 0.0]])
TARGETS = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # region 2 is background: an all-zero row


def test_hard_label_loss_sums_labels_and_averages_regions():
    # tau = 0.5 -> logits [[1, -1], [0, 0]]; BCE(x, 1) = softplus(-x), BCE(x, 0) = softplus(x)
    expected = (softplus(-1) + softplus(-1) + softplus(0) + softplus(0)) / 2
    assert expected == pytest.approx(1.00640887, abs=1e-8)
    assert hard_label_loss(COS, TARGETS, tau=0.5).item() == pytest.approx(expected, abs=1e-6)


def test_hard_label_loss_adds_bias_inside_the_logits():
    # bias -1 -> logits [[0, -2], [-1, -1]]
    expected = (softplus(0) + softplus(-2) + softplus(-1) + softplus(-1)) / 2
    assert expected == pytest.approx(0.72329929, abs=1e-8)
    assert hard_label_loss(COS, TARGETS, tau=0.5, bias=-1.0).item() == pytest.approx(expected, abs=1e-6)


def test_soft_label_loss_averages_over_all_elements():
    sim = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    # squared differences 0.25, 0.25, 0.25, 1.0 over 4 elements
    assert soft_label_loss(COS, sim).item() == pytest.approx(1.75 / 4, abs=1e-7)


def test_combined_loss_uses_only_foreground_regions_in_soft_term():
    similarity = torch.tensor([[1.0, 0.2], [0.3, 1.0]])
    labels = torch.tensor([0, -1])
    out = scaledet_classification_loss(COS, labels, similarity, tau=0.5, soft_weight=10.0)
    hard = (2 * softplus(-1) + 2 * softplus(0)) / 2
    soft = ((0.5 - 1.0) ** 2 + (-0.5 - 0.2) ** 2) / 2  # region 1 against row s_0 only
    assert out.hard.item() == pytest.approx(hard, abs=1e-6)
    assert out.soft.item() == pytest.approx(0.37, abs=1e-7)
    assert out.total.item() == pytest.approx(hard + 10 * soft, abs=1e-5)


def test_hard_only_ablation_has_zero_soft_part():
    out = scaledet_classification_loss(COS, torch.tensor([1, 0]), None, tau=0.5)
    assert out.soft.item() == 0.0
    assert out.total.item() == pytest.approx(out.hard.item())


def test_all_background_batch_has_zero_soft_term():
    out = scaledet_classification_loss(COS, torch.tensor([-1, -1]), torch.eye(2), tau=0.5)
    assert out.soft.item() == 0.0
    assert out.hard.item() == pytest.approx((softplus(1) + softplus(-1) + 2 * softplus(0)) / 2, abs=1e-6)


@pytest.mark.parametrize("fn", ["hard", "soft", "combined"])
def test_zero_regions_give_zero_with_a_gradient(fn):
    cos = torch.zeros(0, 5, requires_grad=True)
    if fn == "hard":
        loss = hard_label_loss(cos, torch.zeros(0, 5), tau=0.02)
    elif fn == "soft":
        loss = soft_label_loss(cos, torch.zeros(0, 5))
    else:
        loss = scaledet_classification_loss(cos, torch.zeros(0, dtype=torch.long), torch.eye(5)).total
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert cos.grad is not None and cos.grad.shape == (0, 5)


def test_gradients_by_hand():
    # d/dc BCE(c/tau, 1) = (sigmoid(c/tau) - 1) / tau = (0.5 - 1) / 0.5 at c = 0
    cos = torch.zeros(1, 1, requires_grad=True)
    hard_label_loss(cos, torch.ones(1, 1), tau=0.5).backward()
    assert cos.grad.item() == pytest.approx(-1.0)
    # d/dc (c - s)^2 = 2 (c - s) = -1 at c = 0.5, s = 1
    cos = torch.full((1, 1), 0.5, requires_grad=True)
    soft_label_loss(cos, torch.ones(1, 1)).backward()
    assert cos.grad.item() == pytest.approx(-1.0)


def test_gradients_reach_region_features_through_the_head():
    torch.manual_seed(0)
    head = CosineClassifier(in_features=8, embed_dim=4, tau=0.02)
    features = torch.randn(6, 8, requires_grad=True)
    labels_emb = torch.randn(3, 4)
    cos = head(features, labels_emb)
    loss = scaledet_classification_loss(
        cos, torch.tensor([0, 1, 2, -1, -1, 0]), torch.rand(3, 3), tau=head.tau, bias=head.bias
    ).total
    loss.backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    assert head.bias.grad is not None and head.bias.grad.abs() > 0
    assert head.projection.weight.grad.abs().sum() > 0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        hard_label_loss(torch.zeros(2, 3), torch.zeros(2, 4), tau=0.02)
    with pytest.raises(ValueError, match="labels must have shape"):
        scaledet_classification_loss(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long), None)


def test_hard_label_loss_divides_by_regions_not_labels_and_takes_integer_targets():
    # one region, three labels, tau 0.5: logits [1, -1, 0], target label 0
    cos = torch.tensor([[0.5, -0.5, 0.0]])
    expected = softplus(-1) + softplus(-1) + softplus(0)  # one region: the sum over the labels
    assert hard_label_loss(cos, torch.tensor([[1, 0, 0]]), tau=0.5).item() == pytest.approx(expected, abs=1e-6)
    soft = soft_label_loss(cos, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))  # e.g. a float64 matrix
    assert soft.dtype == torch.float32 and soft.item() == pytest.approx((0.25 + 0.25 + 0.0) / 3, abs=1e-7)


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^cos must be \[R, n\] and targets the same shape; got \[2, 3\] and \[2, 4\]$"):
        hard_label_loss(torch.zeros(2, 3), torch.zeros(2, 4), tau=0.02)
    with pytest.raises(ValueError, match=r"^cos must be \[R, n\] and sim_rows the same shape; got \[2, 3\] and \[3\]$"):
        soft_label_loss(torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"^labels must have shape \[2\], got \[3\]$"):
        scaledet_classification_loss(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long), None)
    with pytest.raises(ValueError, match=r"^freq_weight must have shape \[3\], got \[4\]$"):
        scaledet_classification_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), None,
                                     freq_weight=torch.ones(4))


def test_soft_weight_one_keeps_the_soft_term():
    similarity = torch.tensor([[1.0, 0.2], [0.3, 1.0]])
    out = scaledet_classification_loss(COS, torch.tensor([0, -1]), similarity, tau=0.5, soft_weight=1.0)
    assert out.soft.item() == pytest.approx(0.37, abs=1e-7)
    assert out.total.item() == pytest.approx(out.hard.item() + 0.37, abs=1e-6)
