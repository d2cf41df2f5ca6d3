"""Backbones by name: ImageNet weights really load (classifies real photos), explicit errors otherwise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scaledet.backbones import build_backbone, load_effnet_lite0_classifier
from scaledet.errors import ConfigError, WeightsUnavailableError


def _imagenet_top1(model, image) -> int:
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    x = (x - 0.5) / 0.5  # tf_efficientnet_lite0 normalisation
    with torch.no_grad():
        return int(model.eval()(x).argmax())


def test_effnet_lite0_packaged_weights_classify_real_photos():
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image is a dev dependency CI installs")
    model = load_effnet_lite0_classifier()
    assert 281 <= _imagenet_top1(model, skimage_data.chelsea()) <= 285  # a cat class
    assert _imagenet_top1(model, skimage_data.coffee()) == 967  # espresso


def test_effnet_lite0_random_init_differs_from_packaged():
    trained = load_effnet_lite0_classifier().state_dict()["conv_stem.weight"]
    random = load_effnet_lite0_classifier(None).state_dict()["conv_stem.weight"]
    assert not torch.equal(trained, random)


def test_fpn_levels_and_channels():
    features = build_backbone("tiny", weights=None, fpn_channels=32)(torch.rand(1, 3, 128, 160))
    assert list(features) == ["0", "1", "2", "pool"]
    assert [tuple(f.shape[-2:]) for f in features.values()] == [(16, 20), (8, 10), (4, 5), (2, 3)]
    assert all(f.shape[1] == 32 for f in features.values())


def test_unknown_backbone_suggests_name():
    with pytest.raises(ConfigError, match="did you mean 'swin-t'"):
        build_backbone("swin_t")


def test_hub_weights_unavailable_offline_say_how_to_pass_a_file(monkeypatch):
    from torchvision.models import ResNet50_Weights

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(type(ResNet50_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(WeightsUnavailableError, match="local path"):
        build_backbone("r50", weights="default")


def test_weights_from_local_file(tmp_path):
    source = build_backbone("tiny", weights=None, fpn_channels=8)
    path = tmp_path / "tiny.pth"
    torch.save(source.body.state_dict(), path)
    loaded = build_backbone("tiny", weights=path, fpn_channels=8)
    assert torch.equal(loaded.body.stem[0][0].weight, source.body.stem[0][0].weight)
    with pytest.raises(WeightsUnavailableError, match="not found"):
        build_backbone("r50", weights=tmp_path / "missing.pth")


@pytest.mark.parametrize("name, channels", [("r50", 256), ("swin-t", 96)])
def test_paper_backbones_build_random_init_with_three_levels(name, channels):
    model = build_backbone(name, weights=None, fpn_channels=channels)
    with torch.no_grad():
        features = model.eval()(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape[-2:]) for f in features.values()] == [(8, 8), (4, 4), (2, 2), (1, 1)]
