"""A detector trained from ImageNet weights (frozen BatchNorm) is rebuilt from its checkpoint without reading
those weights again, with the same architecture: direct and fine-tune transfer start from such checkpoints."""

from __future__ import annotations

import torch

from scaledet import checkpoints as ckpt
from scaledet.config import preset, with_overrides
from scaledet.detector import build_detector
from scaledet.engine import load_detector
from scaledet.labels import LabelSpace


def test_rebuilt_detector_has_the_pretrained_architecture_and_loads_strictly(tmp_path, monkeypatch):
    space = LabelSpace.from_embeddings(["a", "b"], torch.randn(2, 384), "d")
    cfg = with_overrides(preset("scaledet"), ["model.fpn_channels=64", "model.representation_size=128"])
    trained = build_detector(cfg.model, space)  # packaged ImageNet weights: frozen BatchNorm, no batch counters
    assert not any(k.endswith("num_batches_tracked") for k in trained.state_dict())
    path = ckpt.save_checkpoint({"step": 1, "model": trained.state_dict(), "label_space": trained.label_state(),
                                 "config": cfg.to_dict()}, tmp_path)

    def no_weights(*args, **kwargs):
        raise AssertionError("backbone weights read while rebuilding from a checkpoint")

    monkeypatch.setattr("scaledet.backbones.load_effnet_lite0_classifier", no_weights)
    rebuilt = load_detector(path)
    assert set(rebuilt.state_dict()) == set(trained.state_dict())
    for name, tensor in trained.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], tensor), name
