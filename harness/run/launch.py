"""Submitting a stage: the cells that need (re)computing as one submitit job array, recorded in the sweep's
manifest; waiting on them, with a failure record for any job whose process died before its runner wrote one.

The work a job does is its :class:`~harness.workloads.base.Workload`'s function for the job's mode,
``work(spec, run_dir) -> dict``; the workload object travels with the job (pickled by reference to its
functions), so a fresh SLURM process needs no lookup.

Layout under the runs root: ``runs/<job id>/`` (the job's ``job.log`` and its own checkpoints),
``runs/_submitit/<sweep>/`` (submitit's pickles and stdout/stderr per SLURM job),
``runs/_manifests/<sweep>.json`` (job id → spec, executor, cluster job id).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import submitit

from harness.job import JobSpec
from harness.plan.resources import Resources
from harness.run.executors import make_executor
from harness.run.manifest import update_manifest
from harness.run.results import cells_to_run, read_record, result_path
from harness.run.runner import TRACEBACK_TAIL, FailedRun, JobRunner
from harness.workloads.base import Workload
from scaledet.errors import ScaleDetError

log = logging.getLogger(__name__)
CLOCK_SLACK_S = 5.0  # a record this close to the submission time counts as written by its runner


@dataclass
class Submission:
    """What :func:`submit` did: the submitit jobs, by job id, and the cells it left alone."""

    jobs: dict[str, submitit.Job] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    # where failure records go when a job's process died before its runner could write one
    runners: dict[str, JobRunner] = field(default_factory=dict)
    submitted_at: float = field(default_factory=time.time)

    def wait(self) -> dict[str, str]:
        """Wait for every job; job id → "done" | "failed" (an exception is recorded, not raised)."""
        states = {}
        for job_id, job in self.jobs.items():
            try:
                outputs = job.results()  # every task of multi-task (DDP) jobs
                failed = [out for out in outputs if isinstance(out, FailedRun)]
                states[job_id] = "failed" if failed else "done"
            except Exception as error:  # noqa: BLE001 - any job error; the runner wrote its failure record
                log.warning("job %s failed: %s", job_id, str(error).splitlines()[0] if str(error) else error)
                states[job_id] = "failed"
                try:
                    self._record_lost(job_id, job, error)
                except (OSError, ScaleDetError) as problem:  # waiting goes on; the state is "failed" anyway
                    log.warning("job %s: could not write its failure record: %s", job_id, problem)
        return states

    def _record_lost(self, job_id: str, job: submitit.Job, error: Exception) -> None:
        """A failure record for a job whose process died (SIGKILL, OOM killer, node failure) before its
        runner wrote any record in this submission; a record the runner wrote is left as it is."""
        runner = self.runners.get(job_id)
        if runner is None:
            return
        path = result_path(runner.results_root, runner.sweep, job_id)
        if path.exists() and (path.stat().st_mtime >= self.submitted_at - CLOCK_SLACK_S
                              or read_record(path).status == "done"):  # never replace a result
            return
        text = str(error)
        first = text.splitlines()[0] if text else type(error).__name__
        runner._write(
            status="failed", started=self.submitted_at, started_at=None, cluster_id=str(job.job_id),
            log_path=str(runner.runs_root / job_id / "job.log"),
            error=f"JobLost: the job process ended without writing a result (killed by a signal, e.g. the "
                  f"out-of-memory killer, or lost with its node); {type(error).__name__}: {first}",
            traceback="".join(text.splitlines(True)[-TRACEBACK_TAIL:]))


def submit(
    specs: Sequence[JobSpec], *, sweep: str, results_root: Path, runs_root: Path, executor: str = "debug",
    resources: Resources | None = None, workload: Workload, overwrite: bool = False,
    retry_failed: bool = False, rehearsal: bool = False,
) -> Submission:
    """Submit the cells of ``specs`` that need (re)computing as one job array; record them in the manifest."""
    todo = cells_to_run(results_root, sweep, specs, overwrite=overwrite, retry_failed=retry_failed)
    workload.check_specs(todo)  # fail before submitting anything
    for mode in sorted({spec.mode for spec in todo}):
        workload.work_for(mode, rehearsal=rehearsal)
    submission = Submission(skipped=[s.job_id for s in specs if s not in set(todo)])
    if not todo:
        return submission
    runs_root = Path(runs_root)
    ex = make_executor(executor, runs_root / "_submitit" / sweep, resources or Resources())
    runners = [JobRunner(s, sweep, Path(results_root).resolve(), runs_root.resolve(), workload, executor, rehearsal)
               for s in todo]
    with ex.batch():
        jobs = [ex.submit(runner) for runner in runners]
    submission.jobs = {spec.job_id: job for spec, job in zip(todo, jobs)}
    submission.runners = {spec.job_id: runner for spec, runner in zip(todo, runners)}
    update_manifest(runs_root, sweep, results_root, executor, todo, jobs)
    log.info("sweep %s: submitted %d job(s) with executor %s, %d cell(s) already there",
             sweep, len(jobs), executor, len(submission.skipped))
    return submission
