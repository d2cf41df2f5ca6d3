"""The fine-tune schedule: how a transfer job's training length is set, defined once.

A transfer job (``finetune``/``fewshot``) trains for the steps its overrides give (``train.max_steps``: the
suite's settings or the user's ``--set``), else GLIP's full-data fine-tune: :data:`FINETUNE_EPOCHS` epochs of its
training images at its own batch (``data.batch_size``: the suite's fine-tune settings, not the pretraining's), the
learning rate dropped at 8/12 and 11/12 of them, and a model selection check each epoch. The workload applies
it, the budget counts the images it draws (steps x batch), the plan prints its steps.
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

    def steps_per_epoch(self, train_images: int, batch: int) -> int:
        """Steps of one epoch: every training image once, the last batch partly filled (at least one step)."""
        return max(1, math.ceil(train_images / batch))

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
        return f"{steps:,} steps x {batch} images ({self.epochs} epochs of {train_images:,})"

    def apply(self, cfg: Config, train_images: int) -> Config:
        """``cfg`` with this schedule's steps, lr drops and checks (unchanged for explicit steps)."""
        if self.steps is not None:
            return cfg
        per_epoch = self.steps_per_epoch(train_images, cfg.data.batch_size)
        return replace(cfg, train=replace(
            cfg.train, max_steps=self.epochs * per_epoch, warmup_steps=min(cfg.train.warmup_steps, per_epoch),
            lr_steps=(8 * per_epoch * self.epochs // 12, 11 * per_epoch * self.epochs // 12),
            checkpoint_every=per_epoch))
