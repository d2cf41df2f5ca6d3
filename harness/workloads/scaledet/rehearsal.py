"""The detector's rehearsal work: each mode's real work function run with :data:`~.scale.TOY_SCALE` set (see
:mod:`harness.workloads.scaledet.scale` for what shrinks and what is stood in), its record saying so."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.acquire.standins import standin_data
from harness.catalog.datasets import get_suite
from harness.job import TRAINED_TRANSFER_MODES, JobSpec
from harness.workloads.scaledet import work
from harness.workloads.scaledet.scale import TOY_SCALE, ToyScale


def _at_toy_scale(fn: Callable[[JobSpec, Path], dict[str, Any]], spec: JobSpec, run_dir: Path) -> dict[str, Any]:
    scale = ToyScale()
    token = TOY_SCALE.set(scale)
    try:
        output = fn(spec, run_dir)
    finally:
        TOY_SCALE.reset(token)
    scale.notes.update(steps=scale.steps, images_per_split=scale.images_per_split, image_size=scale.size)
    return {**output, "rehearsal": dict(scale.notes)}


def pretrain(spec: JobSpec, run_dir: Path) -> dict[str, Any]:
    return _at_toy_scale(work.pretrain, spec, run_dir)


def direct(spec: JobSpec, run_dir: Path) -> dict[str, Any]:
    return _at_toy_scale(work.direct, spec, run_dir)


def finetune(spec: JobSpec, run_dir: Path) -> dict[str, Any]:
    output = _at_toy_scale(work.finetune, spec, run_dir)
    # nothing reads a fine-tune's checkpoints again: a rehearsal of the paper sweeps would otherwise fill ~100 GB
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    (run_dir / "selection.pt").unlink(missing_ok=True)
    return output


REHEARSAL_WORK = {"pretrain": pretrain, "direct": direct, **dict.fromkeys(TRAINED_TRANSFER_MODES, finetune)}


def rehearsal_inputs(data_root: Path, suite: str, datasets: Sequence[str]) -> dict[str, str]:
    """Stand-ins for the datasets the cells read and for every upstream dataset of ``suite``: a pretrain cell
    is scored on all of them (Table 1's grid)."""
    return standin_data(data_root, suite, [*datasets, *get_suite(suite).upstream])
