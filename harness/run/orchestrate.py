"""Running a sweep: its stages in order (pretrain before the transfer jobs that start from it), one job array a
stage, waiting between stages; cells with results are left alone."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from harness.job import JobSpec
from harness.plan.resources import Resources
from harness.plan.sweepfile import SweepFile
from harness.run.launch import submit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaunchOptions:
    """Where results and runs go, how jobs are submitted, and what is re-run."""

    results_root: Path = Path("results")
    runs_root: Path = Path("runs")
    executor: str | None = None  # None: the sweep file's
    resources: Resources = field(default_factory=Resources)
    overwrite: bool = False
    retry_failed: bool = False
    no_wait: bool = False


@dataclass(frozen=True)
class Outcome:
    """What a launch did: the sweep id, its failed job ids, and whether it stopped after submitting."""

    sweep_id: str
    failed: tuple[str, ...] = ()
    pending: bool = False  # submitted without waiting (`--no-wait`)


def default_sweep_id(suite: str, specs: list[JobSpec]) -> str:
    digest = hashlib.sha256(",".join(sorted(s.job_id for s in specs)).encode()).hexdigest()[:8]
    return f"{suite}-{digest}"


def stage_name(stage: list[JobSpec]) -> str:
    return "+".join(dict.fromkeys(spec.mode for spec in stage)) or "nothing"


def sweep_batches(sweep: SweepFile, options: LaunchOptions) -> tuple[int, dict[str, tuple[int, int] | None]]:
    """(ranks per job, job id -> (global batch, images per rank)) of the sweep's training cells as launched with
    ``options`` (``Workload.batches``); ``ConfigError`` naming a cell whose batch the ranks do not divide."""
    executor = options.executor or sweep.executor
    ranks = options.resources.ranks(executor)
    return ranks, sweep.work.batches(sweep.plan(), ranks, options.resources.ranks_source(executor))


def launch(sweep: SweepFile, options: LaunchOptions) -> Outcome:
    """Submit the sweep's missing cells stage by stage (waiting between stages); print progress lines."""
    stages = sweep.stages()
    specs = [spec for stage in stages for spec in stage]
    sweep_id = sweep.sweep or default_sweep_id(sweep.suite, specs)
    executor = options.executor or sweep.executor
    sweep_batches(sweep, options)  # a global batch the ranks do not divide fails before anything is submitted
    print(f"sweep {sweep_id}: {len(specs)} cells in {len(stages)} stage(s) "
          f"({' then '.join(stage_name(stage) for stage in stages)}), executor {executor}")
    failed: list[str] = []
    for number, stage in enumerate(stages, start=1):
        submission = submit(stage, sweep=sweep_id, results_root=options.results_root, runs_root=options.runs_root,
                            executor=executor, resources=options.resources, workload=sweep.work,
                            overwrite=options.overwrite, retry_failed=options.retry_failed)
        print(f"stage {number}/{len(stages)} ({stage_name(stage)}): {len(stage)} cells, "
              f"{len(submission.jobs)} submitted, {len(submission.skipped)} already there")
        if options.no_wait and executor != "debug":
            if number < len(stages) and submission.jobs:
                print(f"stage {number + 1} needs stage {number} first: run the same command again once it is done")
            if submission.jobs:
                return Outcome(sweep_id, pending=True)
            continue
        states = submission.wait()
        failed += sorted(job for job, state in states.items() if state == "failed")
        if failed and number < len(stages):
            break
    done = len(specs) - len(failed)
    print(f"sweep {sweep_id}: {done} done or already there, {len(failed)} failed"
          + (f" ({', '.join(failed)}; see `harness status --sweep {sweep_id}`)" if failed else ""))
    return Outcome(sweep_id, tuple(failed))
