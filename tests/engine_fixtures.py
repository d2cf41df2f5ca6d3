"""Shared set-up for engine tests: a tiny-backbone config, real Packages images as COCO, and the environment of a
rank of a CPU (gloo) process group."""

from __future__ import annotations

import os
import socket
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


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the rendezvous port of a test's process group)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_environment(rank: int, world: int, port: int) -> None:
    """This process as rank ``rank`` of ``world`` the way torchrun/submitit set it up (env:// rendezvous on
    127.0.0.1:``port``), with one intra-op thread (the ranks share the test machine's cores)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
