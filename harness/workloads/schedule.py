"""The fine-tune schedule: how a transfer job's training length is set, defined once.

A trained transfer job (``finetune``, ``linear``, ``prompt`` and their few-shot kinds) trains for the steps its overrides give (``train.max_steps``: the
suite's settings or the user's ``--set``), else by its protocol (``--set protocol=...``, :data:`PROTOCOLS`):

- ``default``: :data:`FINETUNE_EPOCHS` epochs of its training images, full-data and few-shot alike;
- ``glip``: GLIP's schedules. Full data: the dataset config's ``SOLVER.MAX_EPOCH`` epochs, each over
  ``DATASETS.GENERAL_COPY`` copies of the train split (16 for most ODinW datasets, 4 for the large ones: the
  registry's ``max_epoch`` and ``general_copy``); k-shot: GLIP's ``--custom_shot_and_epoch_and_general_copy``
  settings (:data:`GLIP_FEW_SHOT`: 200 epochs over 8, 4, 2 and 1 copies for 1, 3, 5 and 10 shots).

Either way at the job's own batch (``data.batch_size``: the suite's fine-tune settings, not the pretraining's),
the learning rate dropped at 8/12 and 11/12 of the steps, and a model selection check each epoch. The workload
applies it and records it, the budget counts the images it draws (steps x batch), the plan prints its steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from harness.catalog.datasets import get_dataset
from harness.job import FEWSHOT_MODES, JobSpec
from scaledet.config import Config
from scaledet.errors import ConfigError
from scaledet.names import check_name

FINETUNE_EPOCHS = 12  # GLIP's full-data fine-tune, where neither suite nor user sets the steps
PROTOCOLS: dict[str, str] = {
    "default": f"{FINETUNE_EPOCHS} epochs of the training images, full data and few-shot alike",
    "glip": "GLIP's: MAX_EPOCH epochs over GENERAL_COPY copies per dataset; k-shot 200 epochs over 8/4/2/1 copies",
}
# shots -> (epochs, copies of the k-shot images per epoch): microsoft/GLIP README, "Full Model Fine-Tuning",
# --custom_shot_and_epoch_and_general_copy 1_200_8, 3_200_4, 5_200_2, 10_200_1
GLIP_FEW_SHOT: dict[int, tuple[int, int]] = {1: (200, 8), 3: (200, 4), 5: (200, 2), 10: (200, 1)}


@dataclass(frozen=True)
class Schedule:
    """Explicit ``steps``, or ``epochs`` over ``copies`` of the training images when ``steps`` is ``None``."""

    steps: int | None = None
    epochs: int = FINETUNE_EPOCHS
    copies: int = 1  # copies of the training images an epoch passes over (GLIP's GENERAL_COPY)
    protocol: str = "default"

    @classmethod
    def of(cls, spec: JobSpec) -> Schedule:
        """The schedule of a transfer spec: its ``train.max_steps`` override, if any, else its protocol's."""
        protocol = check_name("protocol", str(spec.override("protocol") or "default"), PROTOCOLS,
                              f"job {spec.job_id} ({spec.mode} {spec.dataset})")
        steps = spec.override("train.max_steps")
        if steps is not None:
            return cls(steps=int(steps), protocol=protocol)
        if protocol == "default":
            return cls()
        if spec.mode in FEWSHOT_MODES:
            shots = int(spec.shots or 0)
            if shots not in GLIP_FEW_SHOT:
                raise ConfigError(f"job {spec.job_id}: protocol glip has few-shot schedules for "
                                  f"{', '.join(map(str, GLIP_FEW_SHOT))} shots, not {shots}")
            epochs, copies = GLIP_FEW_SHOT[shots]
            return cls(None, epochs, copies, protocol)
        dataset = get_dataset(spec.dataset, spec.suite)
        return cls(None, dataset.max_epoch, dataset.general_copy, protocol)

    def steps_per_epoch(self, train_images: int, batch: int) -> int:
        """Steps of one epoch: every copy of every training image once, the last batch partly filled (at least
        one step)."""
        return max(1, math.ceil(self.copies * train_images / batch))

    def total_steps(self, train_images: int, batch: int) -> int:
        """Optimisation steps the job runs on ``train_images`` images at global batch ``batch``."""
        return self.steps if self.steps is not None else self.epochs * self.steps_per_epoch(train_images, batch)

    def images_seen(self, train_images: int, batch: int) -> int:
        """Training images drawn over the whole schedule (with repeats): steps x batch."""
        return self.total_steps(train_images, batch) * batch

    def describe(self, train_images: int, batch: int) -> str:
        steps = self.total_steps(train_images, batch)
        if self.steps is not None:
            return f"{steps:,} steps x {batch} images"
        copies = f"{self.copies} x " if self.copies != 1 else ""
        return f"{steps:,} steps x {batch} images ({self.epochs} epochs of {copies}{train_images:,})"

    def record(self, train_images: int, batch: int) -> dict[str, Any]:
        """What a job's record says about the schedule that ran."""
        return {"protocol": self.protocol, "explicit_steps": self.steps is not None, "epochs": self.epochs,
                "copies": self.copies, "train_images": train_images, "batch": batch,
                "steps": self.total_steps(train_images, batch)}

    def apply(self, cfg: Config, train_images: int) -> Config:
        """``cfg`` with this schedule's steps, lr drops and checks (unchanged for explicit steps)."""
        if self.steps is not None:
            return cfg
        per_epoch = self.steps_per_epoch(train_images, cfg.data.batch_size)
        return replace(cfg, train=replace(
            cfg.train, max_steps=self.epochs * per_epoch, warmup_steps=min(cfg.train.warmup_steps, per_epoch),
            lr_steps=(8 * per_epoch * self.epochs // 12, 11 * per_epoch * self.epochs // 12),
            checkpoint_every=per_epoch))
