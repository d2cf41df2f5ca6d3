"""Shared set-up for engine tests: a tiny-backbone config and real Packages images as COCO."""

from __future__ import annotations

from pathlib import Path

import torch
from coco_fixtures import odinw_coco

from scaledet.config import Config, preset, with_overrides
from scaledet.data import CocoDataset, load_coco
from scaledet.labels import LabelSpace


def tiny_config(steps: int, every: int, **extra: str) -> Config:
    """The scaledet preset on the tiny random backbone at 128 px, no workers, no warm-up surprises."""
    overrides = [f"train.max_steps={steps}", f"train.checkpoint_every={every}", "train.warmup_steps=2",
                 "train.lr_steps=[3]", "data.train_size=128", "data.batch_size=2", "data.num_workers=0",
                 "model.backbone=tiny", "model.weights=null", "model.fpn_channels=16",
                 "model.representation_size=32", "model.min_size_test=128", "model.max_size_test=160",
                 "model.rpn_batch_size_per_image=64", "model.box_batch_size_per_image=64"]
    return with_overrides(preset("scaledet"), overrides + [f"{k.replace('__', '.')}={v}" for k, v in extra.items()])


def packages(tmp: Path) -> tuple[CocoDataset, LabelSpace]:
    ds = load_coco(odinw_coco(tmp, "Packages", ["train"]), name="packages")
    space = LabelSpace.from_embeddings(ds.category_names, torch.randn(1, 8, generator=torch.Generator().manual_seed(0)),
                                       "packages")
    return ds, space
