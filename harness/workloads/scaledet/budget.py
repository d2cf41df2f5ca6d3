"""GPU-hour estimates of sweep cells from published training rates (images / s / GPU): nothing is measured here.

- ``pretrain``: ``train.max_steps x data.batch_size / rate / 3600``;
- ``direct``: the evaluation split's images / rate / 3600 (the training rate used for inference: approximate);
- ``finetune`` / ``fewshot``: (training images drawn + evaluation images) / rate / 3600, where the images drawn are
  steps x ``data.batch_size``, the steps being ``train.max_steps`` when the cell sets it, else the epochs of the
  train split of ``harness.workloads.schedule`` (fewshot: of at most shots x classes images); approximate.
  ``linear`` and ``prompt`` (and their few-shot kinds) are counted like fine-tunes: an upper bound, since their
  backward pass stops at the box classifier or the label embeddings.
  A transfer cell without a ``data.batch_size`` of its own takes its pretrain cell's (as the job does).

Image counts are the registry's (``harness.catalog.datasets.get_dataset(name, suite).images``, GLIP paper Table 9); an
evaluation split without a count (EgoHands' and Vehicles' ``mini_val``) is counted as its full ``valid`` split; a
dataset without counts (ODinW-35's 22 beyond ODinW-13) gets no number.
A cell whose backbone has no rate in :data:`RATES` gets no number ("n/a (no rate for backbone X)").

``data.batch_size`` is the global batch (all ranks together, detectron2's IMS_PER_BATCH), so GPU-hours do not
depend on how many GPUs share it; :func:`rank_batches` splits it over a job's ranks and refuses a batch they
do not divide.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness.catalog import datasets as registry
from harness.job import FEWSHOT_MODES, TRAINED_TRANSFER_MODES, JobSpec
from harness.workloads.base import Estimate
from harness.workloads.schedule import Schedule
from scaledet.config import Config, with_overrides
from scaledet.engine import per_rank_batch
from scaledet.errors import ConfigError


@dataclass(frozen=True)
class Rate:
    """Training throughput of one backbone, and where the number comes from."""

    images_per_second: float  # per GPU
    source: str


# Detic's model zoo (docs/MODEL_ZOO.md, 8 x V100, the CenterNet2 recipe ScaleDet builds on). Replace with a
# measured rate of our detector when one exists, then re-run benchmarks/make_scaledet_sweeps.py.
RATES: dict[str, Rate] = {
    "r50": Rate(5_760_000 / (17 * 3600 * 8),
                "Detic BoxSup-C2_L_CLIP_R5021k_640b64_4x: 90k x 64 images in 17 h on 8 V100"),
    "swin-b": Rate(5_760_000 / (43 * 3600 * 8),
                   "Detic BoxSup-C2_L_CLIP_SwinB_896b32_4x: 180k x 32 images in 43 h on 8 V100"),
    "swin-t": Rate(5_760_000 / (43 * 3600 * 8), "no published Swin-T figure: Swin-B's rate (upper bound on time)"),
}
CONFIG_SECTIONS = ("model", "data", "train")
TRANSFER_START = ("pretrain_job", "checkpoint", "pretrained")
TRAINING_MODES = ("pretrain", *TRAINED_TRANSFER_MODES)


def pretrain_hours(steps: int, batch: int, backbone: str) -> float:
    """``steps x batch / rate / 3600`` GPU-hours; ``KeyError`` for a backbone without a rate."""
    return steps * batch / RATES[backbone].images_per_second / 3600


def images_hours(images: float, backbone: str) -> float:
    """GPU-hours to push ``images`` images through ``backbone`` at its training rate."""
    return images / RATES[backbone].images_per_second / 3600


def split_images(suite: str, dataset: str, split: str) -> int:
    """Images of ``split`` of an ODinW dataset as ``suite`` uses it; a split without a count is counted as valid."""
    counts = registry.get_dataset(dataset, suite).images
    count = counts.get(split) or counts.get("valid")
    if count is None:
        raise ConfigError(f"dataset {dataset!r} of suite {suite!r}: no image count for split {split!r} or valid")
    return count


def eval_images(suite: str, dataset: str, split_policy: str) -> int:
    """Images a transfer cell is scored on under ``split_policy``."""
    split = registry.get_dataset(dataset, suite).eval_split(split_policy)
    return split_images(suite, dataset, split)


def cell_config(spec: JobSpec) -> Config:
    """The detector config the spec's ``model.*``/``data.*``/``train.*`` overrides give on the defaults.

    The method presets differ only in loss settings, so the defaults stand for all of them here.
    """
    items = [f"{key}={value}" if isinstance(value, str) else f"{key}={json.dumps(value)}"
             for key, value in spec.overrides if key.split(".", 1)[0] in CONFIG_SECTIONS and "." in key]
    try:
        return with_overrides(Config(), items)
    except ConfigError as error:
        raise ConfigError(f"job {spec.job_id} ({spec.mode} {spec.dataset}): {error}") from None


def estimate_cells(specs: Iterable[JobSpec]) -> dict[str, Estimate]:
    """job id -> estimate, for a sweep's cells (transfer cells take their backbone, and batch when they set none,
    from the pretrain cell they start from when it is among ``specs``, else from their own overrides)."""
    specs = list(specs)
    pretrain = {s.job_id: cell_config(s) for s in specs if s.mode == "pretrain"}
    return {s.job_id: estimate_cell(s, pretrain) for s in specs}


def rank_batches(specs: Iterable[JobSpec], ranks: int, ranks_from: str = "") -> dict[str, tuple[int, int] | None]:
    """job id -> (global batch, images per rank per step) of each training cell (pretrain, finetune, fewshot)
    run as ``ranks`` processes (``ranks_from`` says where that number comes from, for errors).

    ``None`` for a transfer cell without a ``data.batch_size`` override whose starting checkpoint is not a pretrain
    cell of ``specs`` (its batch is the checkpoint's: ``train`` checks it when the job starts). A batch that
    ``ranks`` does not divide is a ``ConfigError`` naming the cell.
    """
    specs = list(specs)
    pretrain = {s.job_id: cell_config(s).data.batch_size for s in specs if s.mode == "pretrain"}
    out: dict[str, tuple[int, int] | None] = {}
    for spec in (s for s in specs if s.mode in TRAINING_MODES):
        if spec.mode == "pretrain" or spec.override("data.batch_size") is not None:
            batch = cell_config(spec).data.batch_size
        else:
            batch = pretrain.get(spec.override("pretrain_job"))
        try:
            out[spec.job_id] = None if batch is None else (batch, per_rank_batch(batch, ranks))
        except ConfigError as error:
            raise ConfigError(f"job {spec.job_id} ({spec.mode} {spec.dataset}): {error}"
                              + (f" (world size {ranks}: {ranks_from})" if ranks_from else "")) from None
    return out


def estimate_cell(spec: JobSpec, pretrain: Mapping[str, Config] | None = None) -> Estimate:
    """The GPU-hours of one ``scaledet`` cell (see the module docstring); ``pretrain``: job id -> config of the
    pretrain cells a transfer cell may start from."""
    cfg = cell_config(spec)
    demo = "; the demo suite is sized for CPU" if spec.suite == "demo" else ""
    if spec.mode == "pretrain":
        backbone = cfg.model.backbone
        steps, batch = cfg.train.max_steps, cfg.data.batch_size
        if backbone not in RATES:
            return Estimate(None, f"n/a (no rate for backbone {backbone}{demo})", steps=steps)
        return Estimate(pretrain_hours(steps, batch, backbone),
                        f"{steps:,} steps x {batch} images / {_rate(backbone)}", backbone, steps)
    start = (pretrain or {}).get(spec.override("pretrain_job"))
    batch = (start.data.batch_size if start is not None and spec.override("data.batch_size") is None
             else cfg.data.batch_size)
    steps = None if spec.mode == "direct" else _transfer_steps(spec, batch)
    backbone = spec.override("model.backbone") or (start.model.backbone if start is not None else None)
    if backbone is None:
        key = next((key for key in TRANSFER_START if spec.override(key)), "checkpoint")
        return Estimate(None, f"n/a (backbone of the starting {key} unknown: set model.backbone)", steps=steps)
    if backbone not in RATES:
        return Estimate(None, f"n/a (no rate for backbone {backbone}{demo})", steps=steps)
    if registry.get_suite(spec.suite).label_spaces_only:
        return Estimate(None, f"n/a (no image counts for upstream dataset {spec.dataset})")
    if not _counted(spec):
        return Estimate(None, f"n/a (no image counts for {spec.dataset} in the registry: GLIP's config gives none)",
                        backbone, steps)
    scored = eval_images(spec.suite, spec.dataset, spec.split_policy)
    if spec.mode == "direct":
        return Estimate(images_hours(scored, backbone), f"eval {scored:,} images / {_rate(backbone)}, approximate",
                        backbone)
    train = _train_images(spec)
    plan = Schedule.of(spec)
    seen = plan.images_seen(train, batch)
    schedule = plan.describe(train, batch)
    return Estimate(images_hours(seen + scored, backbone),
                    f"({schedule} + eval {scored:,} images) / {_rate(backbone)}, approximate", backbone, steps)


def _train_images(spec: JobSpec) -> int:
    """Training images of a fine-tune cell (fewshot: at most shots x classes)."""
    train = split_images(spec.suite, spec.dataset, "train")
    if spec.mode in FEWSHOT_MODES:
        classes = len(registry.get_dataset(spec.dataset, spec.suite).categories)
        train = min(train, int(spec.shots or 0) * classes)
    return train


def _transfer_steps(spec: JobSpec, batch: int) -> int | None:
    """Steps a fine-tune cell runs (``None``: its dataset's image count is unknown here)."""
    if registry.get_suite(spec.suite).label_spaces_only or not _counted(spec):
        return Schedule.of(spec).steps
    return Schedule.of(spec).total_steps(_train_images(spec), batch)


def _counted(spec: JobSpec) -> bool:
    """Whether the registry has the train and valid image counts of the cell's dataset (ODinW-35's 22 beyond
    ODinW-13 have none: GLIP's configs do not state them)."""
    counts = registry.get_dataset(spec.dataset, spec.suite).images
    return counts.get("train") is not None and counts.get("valid") is not None


def _rate(backbone: str) -> str:
    return f"{RATES[backbone].images_per_second:.2f} images/s/GPU ({backbone})"
