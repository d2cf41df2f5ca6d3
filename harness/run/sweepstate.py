"""The state of a sweep's cells: result files (done / failed) joined with the scheduler's view (sacct)."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.run.manifest import read_manifest
from harness.run.results import result_path

log = logging.getLogger(__name__)
RUNNING_STATES = {"RUNNING", "COMPLETING", "CONFIGURING", "STOPPED", "SUSPENDED"}
PENDING_STATES = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING"}


@dataclass(frozen=True)
class CellState:
    job_id: str
    dataset: str
    mode: str
    method: str
    seed: int
    shots: int | None
    state: str  # pending | running | done | failed
    executor: str
    cluster_job_id: str | None
    slurm_state: str | None


def sacct_states(cluster_ids: Iterable[str]) -> dict[str, str]:
    """SLURM job id → state from one ``sacct`` call; {} when sacct is unavailable."""
    ids = sorted(set(cluster_ids))
    if not ids or shutil.which("sacct") is None:
        return {}
    cmd = ["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(ids)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("sacct failed (%s): SLURM states unknown", error)
        return {}
    states: dict[str, str] = {}
    for line in out.splitlines():
        if "|" in line:
            job, state = line.split("|", 1)
            states[job.strip()] = state.split()[0] if state.strip() else "UNKNOWN"  # "CANCELLED by 0"
    return states


def sweep_cells(runs_root: Path, sweep: str, results_root: Path | None = None) -> list[CellState]:
    """Every cell in the sweep's manifest, with its state; result files win over the scheduler."""
    manifest = read_manifest(runs_root, sweep)
    root = Path(results_root or manifest["results_root"])
    jobs: dict[str, Any] = manifest["jobs"]
    slurm_ids = [j["cluster_job_id"] for j in jobs.values() if j["executor"] == "slurm"]
    slurm = sacct_states(slurm_ids)
    cells = []
    for job_id, job in sorted(jobs.items(), key=lambda item: _order(item[1]["spec"])):
        spec, cluster_id = job["spec"], job.get("cluster_job_id")
        slurm_state = slurm.get(cluster_id) if job["executor"] == "slurm" else None
        cells.append(CellState(job_id, spec["dataset"], spec["mode"], spec["method"], spec["seed"],
                               spec["shots"], _state(root, sweep, job_id, slurm_state), job["executor"],
                               cluster_id, slurm_state))
    return cells


def _order(spec: dict[str, Any]) -> tuple:
    return (spec["mode"], spec["dataset"], spec["method"], spec["seed"], spec["shots"] or 0)


def _state(root: Path, sweep: str, job_id: str, slurm_state: str | None) -> str:
    path = result_path(root, sweep, job_id)
    if path.exists():
        return "failed" if '"failed"' in _status_line(path) else "done"
    if slurm_state in RUNNING_STATES:
        return "running"
    if slurm_state is None or slurm_state in PENDING_STATES or slurm_state == "COMPLETED":
        return "pending"  # COMPLETED without a file: the record is about to appear or was removed
    return "failed"  # CANCELLED / FAILED / TIMEOUT / NODE_FAIL / OUT_OF_MEMORY without a record


def _status_line(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.strip().startswith('"status"'):
            return line
    return ""
