"""Rehearsals (`--rehearse`): the real plan, every stage and cell, executed for real at toy scale.

The cells are the real plan's (same job ids, stages and cross-stage references); each job runs its workload's
toy-scale work (``Workload.rehearsal_work``), on stand-in data where the real data is absent
(``Workload.rehearsal_inputs``). Everything goes under a separate root (default ``rehearsal/``: results, runs,
reports, stand-in data), marked by a README and by a ``rehearsal`` field in every record, so a rehearsal never
mixes with real results or makes a real cell look done. Resources are the real ones except what this machine
cannot give: no GPUs, one node, one CPU per task, and at most :data:`MAX_RANKS` ranks per job (unless
``--ntasks-per-node`` says otherwise), so DDP still runs (gloo on CPU).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.job import JobSpec
from harness.plan.resources import Resources
from harness.run.orchestrate import Entry, stage_name
from harness.run.results import read_record, result_path
from harness.workloads.base import REHEARSAL_SCRATCH_ENV
from scaledet.files import CACHE_ENV

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("rehearsal")
MAX_RANKS = 2  # ranks per job in a rehearsal: enough to exercise DDP on a 2-core machine
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # a rehearsal never waits on a download
MARKER = "README.md"
CHECKPOINT_GLOB = "*.pt"  # what a job's run folder holds of checkpoints (and other tensors), at any depth
GB = 1e9
MARKER_TEXT = ("# A rehearsal, not results\n\nEverything under this folder was written by `--rehearse`: the real "
               "plan run at toy scale on stand-in data and weights (each record's `rehearsal` field says what was "
               "stood in). Its numbers mean nothing; delete the folder at will.\n")


@dataclass(frozen=True)
class Rehearsal:
    """Where a rehearsal writes, and how many ranks its multi-task jobs keep (``None``: min(asked, MAX_RANKS))."""

    root: Path = DEFAULT_ROOT
    ranks: int | None = None

    @property
    def results_root(self) -> Path:
        return self.root / "results"

    @property
    def runs_root(self) -> Path:
        return self.root / "runs"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    def reports_dir(self, suite: str) -> Path:
        return self.root / "reports" / suite

    def resources(self, asked: Resources) -> Resources:
        """``asked`` as this machine can run it (see the module docstring)."""
        ranks = self.ranks if self.ranks is not None else min(asked.ntasks_per_node * asked.nodes, MAX_RANKS)
        return replace(asked, gpus_per_node=0, nodes=1, ntasks_per_node=ranks, cpus_per_task=1, mem=None)

    def prepare(self, entries: Sequence[Entry]) -> dict[str, str]:
        """Create the root and its marker, write stand-in data for absent datasets, and set (in this process, so
        jobs inherit them) the environment the jobs need; returns what it set."""
        (self.root / "scratch").mkdir(parents=True, exist_ok=True)
        (self.root / MARKER).write_text(MARKER_TEXT)
        scratch = (self.root / "scratch").absolute()
        # derived caches too (label embeddings of stand-in encoders, converted stand-in data) stay in the root
        env = {**OFFLINE, REHEARSAL_SCRATCH_ENV: str(scratch), CACHE_ENV: str(scratch / "cache")}
        for entry in entries:
            inputs = entry.sweep.work.rehearsal_inputs
            suites = dict.fromkeys(spec.suite for spec in entry.specs)
            for suite in suites if inputs is not None else ():
                names = [n for spec in entry.specs if spec.suite == suite for n in spec.dataset.split("+")]
                os.environ.update(found := inputs(self.data_root, suite, list(dict.fromkeys(names))))
                env.update(found)
        os.environ.update(env)
        log.info("rehearsal under %s; environment: %s", self.root, ", ".join(sorted(env)))
        return env


def cell_states(entries: Sequence[Entry], results_root: Path) -> dict[str, str]:
    """Job id -> ``done``, ``failed`` or ``missing`` (no record: an earlier stage failed) over every sweep of the
    rehearsal; a cell several sweeps plan is done when any of its records is."""
    states: dict[str, str] = {}
    for entry in entries:
        for spec in entry.specs:
            path = result_path(results_root, entry.sweep_id, spec.job_id)
            state = read_record(path).status if path.exists() else "missing"
            states[spec.job_id] = "done" if states.get(spec.job_id) == "done" else state
    return states


@dataclass(frozen=True)
class Checkpoints:
    """What the rehearsal's jobs left in their run folders, and what :func:`free_checkpoints` deleted."""

    files: int = 0
    size: int = 0  # bytes
    freed: int = 0  # bytes
    largest: tuple[int, str] = (0, "")  # (bytes, job id)

    def line(self) -> str:
        if not self.files:
            return "checkpoints: none left by the jobs"
        size, job = self.largest
        return (f"checkpoints: {self.files} files, {self.size / GB:,.2f} GB, the largest {size / GB:,.2f} GB "
                f"({job}; the real run's are as large: same architecture, same optimizer state); "
                f"{self.freed / GB:,.2f} GB freed (read by no cell that still has to run)")


def free_checkpoints(specs: Sequence[JobSpec], states: Mapping[str, str], runs_root: Path) -> Checkpoints:
    """Delete the checkpoint files (:data:`CHECKPOINT_GLOB` under ``runs/<job id>``) of every done cell that no
    unfinished cell starts from (``pretrain_job``): nothing reads them again, and a rehearsal of the paper's sweeps
    would otherwise keep ~7 GB (real backbones with their optimizer state). A cell that failed or did not run keeps
    its own (it resumes from them) and those of the pretrain job it starts from, for ``--retry-failed``."""
    unfinished = {spec.job_id for spec in specs if states.get(spec.job_id) != "done"}
    needed = unfinished | {str(spec.override("pretrain_job")) for spec in specs
                           if spec.job_id in unfinished and spec.override("pretrain_job")}
    files = size = freed = 0
    largest = (0, "")
    for job_id in dict.fromkeys(spec.job_id for spec in specs):
        for path in sorted((runs_root / job_id).glob(f"**/{CHECKPOINT_GLOB}")):
            if not path.is_file():
                continue
            nbytes = path.stat().st_size
            files, size, largest = files + 1, size + nbytes, max(largest, (nbytes, job_id))
            if job_id not in needed:
                path.unlink()
                freed += nbytes
    if freed:
        log.info("rehearsal: freed %.2f GB of checkpoints under %s", freed / GB, runs_root)
    return Checkpoints(files, size, freed, largest)


def summary(entries: Sequence[Entry], states: Mapping[str, str], results_root: Path, wall_s: float,
            checkpoints: Checkpoints | None = None) -> list[str]:
    """The closing lines: per stage of each sweep, cells / done / failed with the first error of a failed one; the
    checkpoints the jobs left (:func:`free_checkpoints`); the wall time and the real run's GPU-hour estimate; last,
    ``rehearsal: N cells, D done, F failed`` over distinct job ids (a cell several sweeps plan counts once, as in
    `--dry-run`)."""
    lines: list[str] = []
    hours: dict[str, float | None] = {}
    for entry in entries:
        estimates = entry.sweep.work.estimates(entry.specs)
        for number, stage in enumerate(entry.stages, start=1):
            done, failed, first = 0, 0, ""
            for spec in stage:
                path = result_path(results_root, entry.sweep_id, spec.job_id)
                record = read_record(path) if path.exists() else None
                state = record.status if record else "missing"
                hours.setdefault(spec.job_id, estimates[spec.job_id].hours)
                done += state == "done"
                if state != "done":
                    failed += 1
                    if not first:
                        error = record.error if record else "no record (not run: an earlier stage failed)"
                        first = f"; first error: {spec.mode} {spec.dataset} ({spec.job_id}): {error}"
            lines.append(f"  {entry.where or entry.sweep_id} stage {number}/{len(entry.stages)} "
                         f"({stage_name(stage)}): {len(stage)} cells, {done} done, {failed} failed{first}")
    if checkpoints is not None:
        lines.append(checkpoints.line())
    known = [h for h in hours.values() if h is not None]
    real = f"{sum(known):,.1f} GPU-hours" if known else "n/a GPU-hours"
    done = sum(state == "done" for state in states.values())
    lines.append(f"rehearsal wall time {wall_s:,.0f} s; the real run: {real} (`--dry-run` for the details)")
    lines.append(f"rehearsal: {len(states)} cells, {done} done, {len(states) - done} failed")
    return lines
