"""Models whose weights a checkpoint overwrites next are built without their random init (scaledet.init_skip),
and checkpoints are read memory-mapped (scaledet.checkpoints.load_checkpoint): both give exactly what the slow
way gives."""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import tiny_config
from torch import nn
from torch.nn import init

from scaledet import checkpoints as ckpt
from scaledet.detector import build_detector
from scaledet.init_skip import FILLS, init_skipped
from scaledet.labels import LabelSpace


def _space(n: int = 3) -> LabelSpace:
    return LabelSpace.from_embeddings([f"label{i}" for i in range(n)],
                                      torch.randn(n, 8, generator=torch.Generator().manual_seed(0)), "d")


def test_fills_leave_their_tensor_and_the_rng_alone_and_come_back_after_an_error():
    real = {name: getattr(init, name) for name in FILLS}
    torch.manual_seed(0)
    rng = torch.get_rng_state()
    with init_skipped():
        sevens = init.normal_(torch.full((2, 2), 7.0))
        init.kaiming_uniform_(nn.Linear(4, 3).weight)
    assert torch.equal(sevens, torch.full((2, 2), 7.0))
    assert torch.equal(torch.get_rng_state(), rng)  # nothing drew a random number
    with pytest.raises(ValueError, match="inside"), init_skipped():
        raise ValueError("inside")
    assert {name: getattr(init, name) for name in FILLS} == real
    assert not torch.equal(init.normal_(torch.full((2, 2), 7.0)), torch.full((2, 2), 7.0))


@pytest.mark.parametrize(("detector", "backbone"), [("faster_rcnn", "tiny"), ("centernet2", "tiny"),
                                                    ("centernet2", "swin-t")])
def test_a_detector_built_without_init_then_loaded_equals_one_built_with_it(detector, backbone):
    """Every parameter and buffer (the non-persistent ones too, which no checkpoint holds) and the detections."""
    cfg = tiny_config(1, 1, model__detector=detector, model__backbone=backbone, model__min_size_test=192,
                      model__max_size_test=192).model
    torch.manual_seed(0)
    trained = build_detector(cfg, _space(), load_weights=False)
    state = {"model": trained.state_dict(), "label_space": _space().to_state()}
    torch.manual_seed(1)
    slow = build_detector(cfg, _space(), load_weights=False)
    ckpt.load_model_weights(slow, state)
    with init_skipped():
        fast = build_detector(cfg, _space(), load_weights=False)
    ckpt.load_model_weights(fast, state)
    slow_tensors = {**dict(slow.named_parameters()), **dict(slow.named_buffers())}
    fast_tensors = {**dict(fast.named_parameters()), **dict(fast.named_buffers())}
    assert slow_tensors.keys() == fast_tensors.keys()
    assert [name for name in slow_tensors if not torch.equal(slow_tensors[name], fast_tensors[name])] == []
    images = [torch.rand(3, 192, 160, generator=torch.Generator().manual_seed(2))]
    with torch.no_grad():
        expected, found = slow.eval()(images), fast.eval()(images)
    assert all(torch.equal(e[key], f[key]) for e, f in zip(expected, found, strict=True) for key in e)


def test_a_memory_mapped_checkpoint_is_never_written_through_and_outlives_its_file(tmp_path):
    weights = {"w": torch.arange(6.0).reshape(2, 3)}
    path = ckpt.save_checkpoint({"step": 1, "model": weights, "label_space": _space().to_state()}, tmp_path)
    state = ckpt.load_checkpoint(path)
    state["model"]["w"].add_(100)  # an optimizer updating a resumed state in place
    assert torch.equal(ckpt.load_checkpoint(path)["model"]["w"], weights["w"])
    path.unlink()  # a rotation deleting the file a running job resumed from
    assert torch.equal(state["model"]["w"], weights["w"] + 100)
