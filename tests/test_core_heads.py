"""The cosine classifier head (eq. 5) with hand-set weights."""

import math

import pytest
import torch

from scaledet.heads import CosineClassifier


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


@pytest.mark.parametrize("kwargs", [{"prior_prob": 0.0}, {"prior_prob": 1.0}, {"tau": 0.0}])
def test_bad_hyperparameters_are_rejected(kwargs):
    with pytest.raises(ValueError):
        CosineClassifier(4, 4, **kwargs)
