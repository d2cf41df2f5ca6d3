"""Transfer regimes (scaledet.tuning): which weights linear probing and prompt tuning change, and which stay
bit-identical; the learned label space; a prompt-tuned checkpoint loaded back."""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import packages, tiny_config

from scaledet.engine import load_detector, train
from scaledet.errors import ConfigError
from scaledet.inference import predict
from scaledet.tuning import (
    LEARNED_EMBEDDINGS,
    apply_tuning,
    classifier_parameter_names,
    learned_label_space,
    tuned_label_space,
)


def _start_and_tuned(tmp_path, tuning: str, detector: str = "faster_rcnn"):
    """(start state, model after 3 steps of ``tuning`` from it, label space): the start is a 2-step full run."""
    data, space = packages(tmp_path)
    start = train(tiny_config(2, 2, model__detector=detector), [data], space, tmp_path / "start", device="cpu")
    before = {k: v.clone() for k, v in start.model.state_dict().items()}
    tuned = train(tiny_config(3, 3, model__detector=detector, train__tuning=tuning, train__lr="0.05"), [data],
                  space, tmp_path / tuning, device="cpu", init_state=before)
    return before, tuned.model, space


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.mark.parametrize("detector", ["faster_rcnn", "centernet2"])
def test_linear_probing_changes_only_the_box_classifiers(tmp_path, detector):
    before, model, _ = _start_and_tuned(tmp_path, "linear", detector)
    classifiers = set(classifier_parameter_names(model))
    stages = 3 if detector == "centernet2" else 1  # the cascade has a classifier a stage
    assert len(classifiers) == 3 * stages and all(k.endswith(("projection.weight", "projection.bias", ".bias"))
                                                    for k in classifiers)
    assert _changed(before, model.state_dict()) == classifiers  # every other weight and buffer bit-identical
    assert {n for n, p in model.named_parameters() if p.requires_grad} == classifiers


def test_prompt_tuning_changes_only_the_label_embeddings(tmp_path):
    before, model, space = _start_and_tuned(tmp_path, "prompt")
    after = model.state_dict()
    assert set(after) - set(before) == {LEARNED_EMBEDDINGS}  # the learned embeddings, saved with the weights
    assert _changed(before, after) == set()  # the whole detector bit-identical
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [LEARNED_EMBEDDINGS]
    assert not torch.allclose(after[LEARNED_EMBEDDINGS], space.embeddings)  # they moved from the text's
    learned = learned_label_space(model, space)
    assert learned.names == space.names and learned.fingerprint != space.fingerprint
    assert torch.allclose(learned.embeddings.norm(dim=1), torch.ones(len(space)))
    assert LEARNED_EMBEDDINGS not in model.state_dict()  # a plain detector again: it scores any vocabulary
    data, _ = packages(tmp_path)
    assert isinstance(predict(model, data, learned, "cpu"), list)


def test_full_tuning_changes_the_detector_too(tmp_path):
    """The control of the two tests above: the same run with every weight trained changes far more."""
    before, model, _ = _start_and_tuned(tmp_path, "full")
    changed = _changed(before, model.state_dict())
    assert any(k.startswith("backbone.") for k in changed) and any(k.startswith("rpn.") for k in changed)


def test_a_prompt_tuned_checkpoint_loads_with_its_learned_vocabulary(tmp_path):
    _, model, space = _start_and_tuned(tmp_path, "prompt")
    learned = model.state_dict()[LEARNED_EMBEDDINGS]
    loaded = load_detector(tmp_path / "prompt" / "last.pt")
    assert torch.allclose(loaded.label_space.embeddings, torch.nn.functional.normalize(learned, dim=-1))
    assert loaded.label_space.fingerprint != space.fingerprint and loaded.label_space.names == space.names


def test_learned_vocabulary_must_be_taken_out_before_another(tmp_path):
    _, model, space = _start_and_tuned(tmp_path, "prompt")
    with pytest.raises(ConfigError, match="prompt tuning"):
        model.set_label_space(space)


def test_tuned_label_space_hand_computed(tmp_path):
    _, space = packages(tmp_path)
    learned = tuned_label_space(space, torch.tensor([[3.0, 4.0] + [0.0] * 6] * len(space)))
    assert torch.allclose(learned.embeddings[0, :2], torch.tensor([0.6, 0.8]))
    again = tuned_label_space(space, torch.tensor([[3.0, 4.0] + [0.0] * 6] * len(space)))
    assert learned.encoder_id == again.encoder_id and learned.encoder_id.startswith(f"{space.encoder_id}+prompt-tuned:")
    with pytest.raises(ValueError, match="do not fit"):
        tuned_label_space(space, torch.zeros(len(space), 3))


def test_unknown_tuning_is_refused_naming_the_key(tmp_path):
    data, space = packages(tmp_path)
    with pytest.raises(ConfigError, match=r"train.tuning"):
        train(tiny_config(1, 1, train__tuning="lora"), [data], space, tmp_path / "x", device="cpu")


def test_a_frozen_batchnorm_keeps_its_running_statistics():
    layers = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).train()
    apply_tuning(layers, "linear")  # no classifier here: everything frozen
    before = {k: v.clone() for k, v in layers.state_dict().items()}
    layers(torch.randn(2, 3, 8, 8) * 5 + 3)
    assert not layers[1].training and all(torch.equal(v, layers.state_dict()[k]) for k, v in before.items())
