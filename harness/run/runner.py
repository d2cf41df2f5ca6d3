"""The checkpointable job runner: one job's work function, then its result or failure record (by rank 0), with
the provenance (packages, git sha, host) every record carries."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import subprocess
import time
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import submitit
import torch
import torch.distributed as dist

from harness.job import JobSpec
from harness.run.results import WORK_KEYS, ResultRecord, write_record
from harness.workloads.base import Workload
from scaledet.errors import ConfigError
from scaledet.names import check_name

log = logging.getLogger(__name__)
TRACEBACK_TAIL = 40  # lines kept in a failure record


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


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def allotted_threads() -> int | None:
    """The CPUs SLURM allotted each task of this job (``--cpus-per-task``), or None outside a SLURM allocation.

    A job runs that many intra-op threads: torch's default (every core of the node) oversubscribes a node shared
    with other jobs; two 1-CPU jobs on a 2-core node ran 2.7x slower in all with the default.
    """
    cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(cpus) if cpus.isdigit() and int(cpus) > 0 else None


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
                 workload: Workload, executor: str, rehearsal: bool = False) -> None:
        self.spec, self.sweep, self.workload, self.executor = spec, sweep, workload, executor
        self.rehearsal = rehearsal
        self.results_root, self.runs_root = Path(results_root), Path(runs_root)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        log.info("job %s checkpointed for requeue", self.spec.job_id)
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)

    def __call__(self) -> dict[str, Any]:
        threads_before, threads = torch.get_num_threads(), allotted_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            return self._run()
        finally:
            torch.set_num_threads(threads_before)

    def _run(self) -> dict[str, Any]:
        run_dir = self.runs_root / self.spec.job_id
        run_dir.mkdir(parents=True, exist_ok=True)
        rank, tasks, cluster_id = _cluster_env()
        handler = _attach_log(run_dir / ("job.log" if rank == 0 else f"job.rank{rank}.log"))
        how = {"started": time.time(), "started_at": now(), "cluster_id": cluster_id,  # what both records carry
               "threads": torch.get_num_threads(), "log_path": str(run_dir / "job.log")}
        try:
            if tasks > 1:
                _init_distributed()
            work = self.workload.work_for(self.spec.mode, rehearsal=self.rehearsal)
            output = check_output(work(self.spec, run_dir), self.workload.name, self.spec.mode)
        except Exception as error:
            if rank == 0:
                self._write(status="failed", **how, error=f"{type(error).__name__}: {error}",
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
            self._write(status="done", **how, **output)
        return output

    def _write(self, *, started: float, started_at: str | None, cluster_id: str | None, **values: Any) -> None:
        if self.rehearsal:  # what the work stood in for (its own "rehearsal" output), or at least that it did
            values["rehearsal"] = {"toy_scale": True, **values.get("rehearsal", {})}
        record = result_record(self.spec, self.sweep, executor=self.executor, cluster_id=cluster_id,
                               started_at=started_at, wall_time_s=round(time.time() - started, 3),
                               provenance=_provenance(), **values)
        path = write_record(self.results_root, record)
        log.info("job %s: %s record %s", self.spec.job_id, record.status, path)


def result_record(spec: JobSpec, sweep: str, *, status: str, executor: str | None = None,
                  cluster_id: str | None = None, started_at: str | None = None, finished_at: str | None = None,
                  wall_time_s: float | None = None, provenance: dict[str, Any] | None = None,
                  **values: Any) -> ResultRecord:
    """The record of one job: its spec, how and where it ran, and ``values`` (a work function's checked output,
    or a failure's ``error``/``traceback``/``log_path``). The one builder of records (the runner's and the
    report fixtures')."""
    return ResultRecord(
        sweep=sweep, job_id=spec.job_id, spec=spec.to_dict(), status=status, split_policy=spec.split_policy,
        executor=executor, slurm_job_id=cluster_id, started_at=started_at, finished_at=finished_at or now(),
        wall_time_s=wall_time_s, **(provenance or {}), **values)


def check_output(output: Any, workload: str, mode: str) -> dict[str, Any]:
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
