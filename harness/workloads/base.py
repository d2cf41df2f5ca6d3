"""What a workload is: the object handed from the CLI to planning, submission, budgets and reports.

A :class:`Workload` carries everything the layers above need to know about the jobs it runs: its work function
per mode, the methods it accepts (:class:`Method` records), its checks of a spec's settings and of the data its
cells read (run before anything is submitted), its cost estimate, and whether its sweeps are staged (pretrain first) and reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.job import JobSpec
from scaledet.names import check_name

WorkFn = Callable[[JobSpec, Path], dict[str, Any]]
# a folder a rehearsal's jobs share for what they need to do once per rehearsal (set by harness.run.rehearsal)
REHEARSAL_SCRATCH_ENV = "HARNESS_REHEARSAL_SCRATCH"


@dataclass(frozen=True)
class Method:
    """One method of the results grid: its name in specs and on the CLI, its detector config preset, whether it
    trains one detector over the concatenated label spaces of its upstream datasets (``joint``) or one per dataset,
    its label in reports, and the ablation it stands for (``None`` for the full method)."""

    name: str
    preset: str
    joint: bool
    label: str
    ablation: str | None = None


@dataclass(frozen=True)
class Estimate:
    """A cell's GPU-hours (``None``: no estimate), how they were obtained (or why there are none), and the
    training steps it runs."""

    hours: float | None
    basis: str
    backbone: str | None = None  # whose rate was used
    steps: int | None = None  # optimisation steps of a training cell (None: it does not train, or unknown)


def _no_check(spec: JobSpec) -> None:
    """The check of a workload whose specs hold no settings of their own."""


def _no_data_check(specs: list[JobSpec]) -> None:
    """The data check of a workload that reads no data it could look for before its jobs start."""


@dataclass(frozen=True)
class Workload:
    """A kind of job: see the module docstring."""

    name: str
    work: Mapping[str, WorkFn]  # mode -> work function
    methods: tuple[Method, ...]
    check_spec: Callable[[JobSpec], None] = _no_check
    # the cells about to be submitted -> one error naming every input they need that is absent (run before submitting)
    check_data: Callable[[list[JobSpec]], None] = _no_data_check
    estimate: Callable[[list[JobSpec]], dict[str, Estimate]] | None = None  # None: no GPU-hour estimate
    no_estimate: str = "CPU only"  # why a workload without ``estimate`` has none (shown in the dry run)
    # (specs, ranks per job, where that number comes from) -> job id -> (global batch, images per rank) or None
    rank_batches: Callable[[list[JobSpec], int, str], dict[str, tuple[int, int] | None]] | None = None
    staged: bool = False  # transfer cells without a starting checkpoint pretrain on the suite's upstream sets
    uses_registry: bool = False  # datasets come from the suite registry (else `--datasets` is required)
    reports: bool = False  # a run renders the suite report at the end
    # `--rehearse`: the toy-scale work per mode (None: `work` is cheap enough to rehearse as it is), and what the
    # jobs need to find stand-in data: (scratch data root, suite, datasets) -> environment variables
    rehearsal_work: Mapping[str, WorkFn] | None = None
    rehearsal_inputs: Callable[[Path, str, Sequence[str]], dict[str, str]] | None = None

    def work_for(self, mode: str, rehearsal: bool = False) -> WorkFn:
        """The work function of ``mode`` jobs (its toy-scale variant for a rehearsal); a clear error naming the
        workload for an unknown mode."""
        work = self.rehearsal_work if rehearsal and self.rehearsal_work is not None else self.work
        return work[check_name(f"mode of workload {self.name!r}", mode, work)]

    def method(self, name: str) -> Method:
        """The :class:`Method` record named ``name``."""
        by_name = {m.name: m for m in self.methods}
        return by_name[check_name(f"method of workload {self.name!r}", name, by_name)]

    @property
    def method_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.methods)

    def check_specs(self, specs: Iterable[JobSpec]) -> None:
        """Every distinct (method, mode, overrides) checked before anything is submitted."""
        seen = set()
        for spec in specs:
            key = (spec.method, spec.mode, spec.overrides)
            if key not in seen:
                seen.add(key)
                self.method(spec.method)
                self.work_for(spec.mode)
                self.check_spec(spec)

    def batches(self, specs: Iterable[JobSpec], ranks: int, ranks_from: str = "") -> dict[str, tuple[int, int] | None]:
        """job id -> (global batch, images per rank per step; ``None``: known only when the job starts) of each
        training cell run as ``ranks`` processes (empty for a workload without batches); ``ConfigError`` naming a
        cell whose batch ``ranks`` do not divide."""
        return {} if self.rank_batches is None else self.rank_batches(list(specs), ranks, ranks_from)

    def estimates(self, specs: Iterable[JobSpec]) -> dict[str, Estimate]:
        """job id -> GPU-hour estimate (n/a for every cell of a workload without one)."""
        specs = list(specs)
        if self.estimate is None:
            return {s.job_id: Estimate(None, f"n/a ({self.name} workload: {self.no_estimate})") for s in specs}
        return self.estimate(specs)
