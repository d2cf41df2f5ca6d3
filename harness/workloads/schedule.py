"""The fine-tune schedule: how a transfer job's training length is set, defined once.

A transfer job (``finetune``/``fewshot``) trains for the steps its overrides give (``train.max_steps``: the
suite's settings or the user's ``--set``), else GLIP's full-data fine-tune: :data:`FINETUNE_EPOCHS` epochs of its
training images, the learning rate dropped at 8/12 and 11/12 of them, and a model selection check each epoch.
The workload applies it, the budget counts the images it sees, the plan prints it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from harness.job import JobSpec
from scaledet.config import Config

FINETUNE_EPOCHS = 12  # GLIP's full-data fine-tune, where neither suite nor user sets the steps


@dataclass(frozen=True)
class Schedule:
    """Explicit ``steps``, or ``epochs`` over the training images when ``steps`` is ``None``."""

    steps: int | None = None
    epochs: int = FINETUNE_EPOCHS

    @classmethod
    def of(cls, spec: JobSpec) -> Schedule:
        """The schedule of a transfer spec (its ``train.max_steps`` override, if any)."""
        steps = spec.override("train.max_steps")
        return cls(steps=None if steps is None else int(steps))

    def images_seen(self, train_images: int, batch: int) -> int:
        """Training images drawn over the whole schedule (with repeats)."""
        return self.steps * batch if self.steps is not None else self.epochs * train_images

    def describe(self, train_images: int, batch: int) -> str:
        if self.steps is not None:
            return f"{self.steps:,} steps x {batch} images"
        return f"{self.epochs} epochs x {train_images:,} images"

    def apply(self, cfg: Config, train_images: int) -> Config:
        """``cfg`` with this schedule's steps, lr drops and checks (unchanged for explicit steps)."""
        if self.steps is not None:
            return cfg
        per_epoch = max(1, math.ceil(train_images / cfg.data.batch_size))
        return replace(cfg, train=replace(
            cfg.train, max_steps=self.epochs * per_epoch, warmup_steps=min(cfg.train.warmup_steps, per_epoch),
            lr_steps=(8 * per_epoch * self.epochs // 12, 11 * per_epoch * self.epochs // 12),
            checkpoint_every=per_epoch))
