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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

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


def summary(entries: Sequence[Entry], results_root: Path, wall_s: float) -> list[str]:
    """The closing lines: per stage of each sweep, cells / done / failed with the first error of a failed one; the
    wall time and the real run's GPU-hour estimate; last, ``rehearsal: N cells, D done, F failed`` over distinct
    job ids (a cell several sweeps plan counts once, as in `--dry-run`)."""
    lines: list[str] = []
    states: dict[str, str] = {}
    hours: dict[str, float | None] = {}
    for entry in entries:
        estimates = entry.sweep.work.estimates(entry.specs)
        for number, stage in enumerate(entry.stages, start=1):
            done, failed, first = 0, 0, ""
            for spec in stage:
                path = result_path(results_root, entry.sweep_id, spec.job_id)
                record = read_record(path) if path.exists() else None
                state = record.status if record else "missing"
                states[spec.job_id] = "done" if state == "done" or states.get(spec.job_id) == "done" else state
                hours.setdefault(spec.job_id, estimates[spec.job_id].hours)
                done += state == "done"
                if state != "done":
                    failed += 1
                    if not first:
                        error = record.error if record else "no record (not run: an earlier stage failed)"
                        first = f"; first error: {spec.mode} {spec.dataset} ({spec.job_id}): {error}"
            lines.append(f"  {entry.where or entry.sweep_id} stage {number}/{len(entry.stages)} "
                         f"({stage_name(stage)}): {len(stage)} cells, {done} done, {failed} failed{first}")
    known = [h for h in hours.values() if h is not None]
    real = f"{sum(known):,.1f} GPU-hours" if known else "n/a GPU-hours"
    done = sum(state == "done" for state in states.values())
    lines.append(f"rehearsal wall time {wall_s:,.0f} s; the real run: {real} (`--dry-run` for the details)")
    lines.append(f"rehearsal: {len(states)} cells, {done} done, {len(states) - done} failed")
    return lines
