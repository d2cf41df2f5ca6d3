"""The four upstream datasets in their standard layouts train jointly on the unified 2,249-label space (CPU)."""

from __future__ import annotations

from pathlib import Path

import torch
from engine_fixtures import tiny_config
from upstream_fixtures import make_coco, make_lvis, make_objects365, make_openimages

from harness.catalog.upstream import load_upstream
from harness.catalog.upstream_labels import UPSTREAM_ORDER, unified_label_space
from scaledet.data import category_mapping
from scaledet.engine import train
from scaledet.labels import LabelSpace


def test_a_few_steps_on_all_four_upstream_datasets(tmp_path: Path) -> None:
    roots = {name: tmp_path / name for name in UPSTREAM_ORDER}
    make_coco(roots["coco"])
    make_lvis(roots["lvis"], roots["coco"])
    make_objects365(roots["objects365"])
    make_openimages(roots["openimages"])
    records = [load_upstream(name, "val", roots=roots, cache_dir=tmp_path / "cache") for name in UPSTREAM_ORDER]
    labels = unified_label_space()
    generator = torch.Generator().manual_seed(0)
    space = LabelSpace.concat([
        LabelSpace.from_embeddings([label.name for label in labels if label.dataset == name],
                                   torch.randn(sum(label.dataset == name for label in labels), 8, generator=generator),
                                   name)
        for name in UPSTREAM_ORDER])
    assert len(space) == 2249
    for record in records:  # the engine's mapping (ids in order onto the slice) is the unified mapping
        assert category_mapping(record.dataset, space) == record.unified
    result = train(tiny_config(steps=3, every=3), [r.dataset for r in records], space, tmp_path / "run", device="cpu")
    assert result.step == 3 and result.checkpoint is not None and result.checkpoint.is_file()
