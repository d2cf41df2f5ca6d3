"""Training transforms: large-scale jitter resize-crop onto a fixed square canvas (paper §4.1), detectron2's standard
multi-scale resize (the paper's Table 3, UniDet's setting), and flips; :func:`training_transform` picks one by
``data.augmentation``.

A transform takes ``(image [3, H, W] float, target, generator)`` and returns the new pair; all randomness
comes from the generator, so the same seed gives the same augmentation. Test-time resizing (shorter side
800, longer ≤ 1333 by default) is done by the detector itself (``ModelConfig.min_size_test``).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from scaledet.config import DataConfig
from scaledet.errors import ConfigError

AUGMENTATIONS = ("lsj", "standard")


class Transform(Protocol):
    def __call__(self, image: Tensor, target: dict[str, Tensor], generator: torch.Generator
                 ) -> tuple[Tensor, dict[str, Tensor]]: ...


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def hflip(image: Tensor, target: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """Mirror left-right, boxes included."""
    width = image.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    return image.flip(-1), {**target, "boxes": boxes}


class LargeScaleJitter:
    """Resize so the longer side is ``size * s`` (s ~ U(scale_range)), crop a random ``size`` square window,
    pad to ``size x size``, keep boxes clipped to the crop (dropping those left with < 1 px), flip with
    probability ``hflip_prob``. ``scale_range=(1, 1)`` is a plain resize to the canvas.
    """

    def __init__(self, size: int, scale_range: tuple[float, float] = (0.1, 2.0), hflip_prob: float = 0.5):
        self.size = int(size)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.hflip_prob = float(hflip_prob)

    def __call__(self, image: Tensor, target: dict[str, Tensor], generator: torch.Generator
                 ) -> tuple[Tensor, dict[str, Tensor]]:
        height, width = image.shape[-2:]
        scale = self.size * _uniform(generator, *self.scale_range) / max(height, width)
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        image = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear", align_corners=False)[0]
        boxes = target["boxes"] * torch.tensor([new_w / width, new_h / height] * 2)
        top = int(_uniform(generator, 0, max(new_h - self.size, 0)))
        left = int(_uniform(generator, 0, max(new_w - self.size, 0)))
        crop = image[:, top : top + self.size, left : left + self.size]
        canvas = image.new_zeros(3, self.size, self.size)
        canvas[:, : crop.shape[1], : crop.shape[2]] = crop
        boxes = boxes - torch.tensor([left, top, left, top], dtype=boxes.dtype)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, crop.shape[2])
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, crop.shape[1])
        keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        target = {**target, "boxes": boxes[keep], "labels": target["labels"][keep]}
        if float(torch.rand((), generator=generator)) < self.hflip_prob:
            canvas, target = hflip(canvas, target)
        return canvas, target


class ResizeShortestEdge:
    """detectron2's standard training augmentation (``ResizeShortestEdge`` with ``min_size_train`` in "choice"
    mode, then a horizontal flip): scale so the shorter side is one of ``min_sizes`` (drawn uniformly) unless the
    longer side would exceed ``max_size``, which then caps the scale; no crop, boxes scaled with the image."""

    def __init__(self, min_sizes: tuple[int, ...] = (640, 672, 704, 736, 768, 800), max_size: int = 1333,
                 hflip_prob: float = 0.5):
        if not min_sizes:
            raise ConfigError("data.train_min_sizes is empty; expected at least one size, e.g. [640, 800]")
        self.min_sizes = tuple(int(s) for s in min_sizes)
        self.max_size = int(max_size)
        self.hflip_prob = float(hflip_prob)

    def __call__(self, image: Tensor, target: dict[str, Tensor], generator: torch.Generator
                 ) -> tuple[Tensor, dict[str, Tensor]]:
        height, width = image.shape[-2:]
        short = self.min_sizes[int(torch.randint(len(self.min_sizes), (), generator=generator))]
        scale = min(short / min(height, width), self.max_size / max(height, width))
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        image = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear", align_corners=False)[0]
        target = {**target, "boxes": target["boxes"] * torch.tensor([new_w / width, new_h / height] * 2)}
        if float(torch.rand((), generator=generator)) < self.hflip_prob:
            image, target = hflip(image, target)
        return image, target


def training_transform(data: DataConfig) -> Transform:
    """The training augmentation ``data.augmentation`` names, with its settings."""
    if data.augmentation == "lsj":
        return LargeScaleJitter(data.train_size, data.scale_range, data.hflip_prob)
    if data.augmentation == "standard":
        return ResizeShortestEdge(data.train_min_sizes, data.train_max_size, data.hflip_prob)
    raise ConfigError(f"data.augmentation is {data.augmentation!r}; expected one of {', '.join(AUGMENTATIONS)}")
