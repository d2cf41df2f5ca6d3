"""Launching jobs: submitit executors (debug / local / slurm), resources, the checkpointable job runner.

The work a job does is its :class:`~harness.workloads.base.Workload`'s function for the job's mode,
``work(spec, run_dir) -> dict``; the workload object travels with the job (pickled by reference to its
functions), so a fresh SLURM process needs no lookup. The returned dict may hold the keys of
``harness.run.results.WORK_KEYS`` (``metrics`` is required).

Layout under the runs root: ``runs/<job id>/`` (the job's ``job.log`` and its own checkpoints),
``runs/_submitit/<sweep>/`` (submitit's pickles and stdout/stderr per SLURM job),
``runs/_manifests/<sweep>.json`` (job id → spec, executor, cluster job id).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import subprocess
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import submitit
import torch
import torch.distributed as dist

from harness.job import JobSpec
from harness.plan.resources import EXECUTORS, Resources
from harness.run.results import (
    WORK_KEYS,
    ResultRecord,
    atomic_write_text,
    cells_to_run,
    read_record,
    result_path,
    write_record,
)
from harness.workloads.base import Workload
from scaledet.errors import ConfigError, ScaleDetError
from scaledet.names import check_name

log = logging.getLogger(__name__)

TRACEBACK_TAIL = 40  # lines kept in a failure record
CLOCK_SLACK_S = 5.0  # a record this close to the submission time counts as written by its runner


def make_executor(kind: str, folder: Path, resources: Resources) -> submitit.Executor:
    check_name("executor", kind, EXECUTORS)
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=kind)
    params = resources.executor_parameters()
    if kind != "slurm":
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    if kind == "debug":
        params = {k: v for k, v in params.items() if k == "timeout_min"}
    executor.update_parameters(**params)
    return executor


def _provenance() -> dict[str, Any]:
    packages = {}
    for name in ("scaledet-harness", "torch", "torchvision", "submitit", "numpy"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"packages": packages, "git_sha": _git_sha(), "host": socket.gethostname()}


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _cluster_env() -> tuple[int, int, str | None]:
    """(global rank, number of tasks, cluster job id) of this process; (0, 1, None) outside submitit."""
    if "SUBMITIT_EXECUTOR" not in os.environ:
        return 0, 1, None
    env = submitit.JobEnvironment()
    return env.global_rank, env.num_tasks, env.job_id


@dataclass(frozen=True)
class FailedRun:
    """What a failed job returns under the debug executor, whose job would otherwise open pdb on an exception
    (submitit's ``DebugJob.results`` calls ``pdb.post_mortem``); its failure record is written already."""

    job_id: str
    error: str


class JobRunner(submitit.helpers.Checkpointable):
    """Runs one :class:`JobSpec`: work function, then a result or failure record (by rank 0).

    On preemption/timeout submitit calls :meth:`checkpoint` and requeues the job; the work function
    resumes from its own checkpoint files in ``runs/<job id>/``.
    """

    def __init__(self, spec: JobSpec, sweep: str, results_root: Path, runs_root: Path,
                 workload: Workload, executor: str) -> None:
        self.spec, self.sweep, self.workload, self.executor = spec, sweep, workload, executor
        self.results_root, self.runs_root = Path(results_root), Path(runs_root)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        log.info("job %s checkpointed for requeue", self.spec.job_id)
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)

    def __call__(self) -> dict[str, Any]:
        run_dir = self.runs_root / self.spec.job_id
        run_dir.mkdir(parents=True, exist_ok=True)
        rank, tasks, cluster_id = _cluster_env()
        handler = _attach_log(run_dir / ("job.log" if rank == 0 else f"job.rank{rank}.log"))
        started, started_at = time.time(), _now()
        try:
            if tasks > 1:
                _init_distributed()
            work = self.workload.work_for(self.spec.mode)
            output = _check_output(work(self.spec, run_dir), self.workload.name, self.spec.mode)
        except Exception as error:
            if rank == 0:
                self._write(status="failed", started=started, started_at=started_at, cluster_id=cluster_id,
                            log_path=str(run_dir / "job.log"), error=f"{type(error).__name__}: {error}",
                            traceback="".join(traceback.format_exc().splitlines(True)[-TRACEBACK_TAIL:]))
            if self.executor == "debug":
                log.error("job %s failed: %s: %s", self.spec.job_id, type(error).__name__, error)
                return FailedRun(self.spec.job_id, f"{type(error).__name__}: {error}")  # type: ignore[return-value]
            raise
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
            logging.getLogger().removeHandler(handler)
            handler.close()
        if rank == 0:
            self._write(status="done", started=started, started_at=started_at, cluster_id=cluster_id,
                        log_path=str(run_dir / "job.log"), **output)
        return output

    def _write(self, *, started: float, started_at: str, cluster_id: str | None, **values: Any) -> None:
        record = ResultRecord(
            sweep=self.sweep, job_id=self.spec.job_id, spec=self.spec.to_dict(),
            split_policy=self.spec.split_policy, executor=self.executor, slurm_job_id=cluster_id,
            started_at=started_at, finished_at=_now(), wall_time_s=round(time.time() - started, 3),
            **_provenance(), **values)
        path = write_record(self.results_root, record)
        log.info("job %s: %s record %s", self.spec.job_id, record.status, path)


def _check_output(output: Any, workload: str, mode: str) -> dict[str, Any]:
    where = f"work function of {workload}/{mode}"
    if not isinstance(output, dict) or "metrics" not in output:
        raise ConfigError(f"{where} must return a dict with 'metrics', got {type(output).__name__}")
    for key in output:
        check_name("work output key", key, WORK_KEYS, where)
    return output


def _attach_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler


def _init_distributed() -> None:
    env = submitit.helpers.TorchDistributedEnvironment().export()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(env.local_rank)
    dist.init_process_group(backend=backend)
    log.info("rank %d/%d joined %s at %s:%d", env.rank, env.world_size, backend, env.master_addr, env.master_port)


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


def manifest_path(runs_root: Path, sweep: str) -> Path:
    return Path(runs_root) / "_manifests" / f"{sweep}.json"


def read_manifest(runs_root: Path, sweep: str) -> dict[str, Any]:
    path = manifest_path(runs_root, sweep)
    if not path.exists():
        raise ConfigError(f"no manifest for sweep {sweep!r} at {path}")
    return json.loads(path.read_text())


def submit(
    specs: Sequence[JobSpec], *, sweep: str, results_root: Path, runs_root: Path, executor: str = "debug",
    resources: Resources | None = None, workload: Workload, overwrite: bool = False,
    retry_failed: bool = False,
) -> Submission:
    """Submit the cells of ``specs`` that need (re)computing as one job array; record them in the manifest."""
    todo = cells_to_run(results_root, sweep, specs, overwrite=overwrite, retry_failed=retry_failed)
    workload.check_specs(todo)  # fail before submitting anything
    submission = Submission(skipped=[s.job_id for s in specs if s not in set(todo)])
    if not todo:
        return submission
    runs_root = Path(runs_root)
    ex = make_executor(executor, runs_root / "_submitit" / sweep, resources or Resources())
    runners = [JobRunner(s, sweep, Path(results_root).resolve(), runs_root.resolve(), workload, executor)
               for s in todo]
    with ex.batch():
        jobs = [ex.submit(runner) for runner in runners]
    submission.jobs = {spec.job_id: job for spec, job in zip(todo, jobs)}
    submission.runners = {spec.job_id: runner for spec, runner in zip(todo, runners)}
    _update_manifest(runs_root, sweep, results_root, executor, todo, jobs)
    log.info("sweep %s: submitted %d job(s) with executor %s, %d cell(s) already there",
             sweep, len(jobs), executor, len(submission.skipped))
    return submission


def _update_manifest(runs_root: Path, sweep: str, results_root: Path, executor: str,
                     specs: Sequence[JobSpec], jobs: Sequence[submitit.Job]) -> None:
    path = manifest_path(runs_root, sweep)
    data = json.loads(path.read_text()) if path.exists() else {"sweep": sweep, "jobs": {}}
    data["results_root"] = str(Path(results_root).resolve())
    for spec, job in zip(specs, jobs):
        data["jobs"][spec.job_id] = {"spec": spec.to_dict(), "executor": executor,
                                     "cluster_job_id": str(job.job_id), "submitted_at": _now()}
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
