"""The manifest of a sweep: ``runs/_manifests/<sweep>.json``, job id -> spec, executor, cluster job id."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit

from harness.job import JobSpec
from harness.run.runner import now
from scaledet.errors import ConfigError
from scaledet.files import atomic_write_text


def manifest_path(runs_root: Path, sweep: str) -> Path:
    return Path(runs_root) / "_manifests" / f"{sweep}.json"


def read_manifest(runs_root: Path, sweep: str) -> dict[str, Any]:
    path = manifest_path(runs_root, sweep)
    if not path.exists():
        raise ConfigError(f"no manifest for sweep {sweep!r} at {path}")
    return json.loads(path.read_text())


def update_manifest(runs_root: Path, sweep: str, results_root: Path, executor: str,
                     specs: Sequence[JobSpec], jobs: Sequence[submitit.Job]) -> None:
    path = manifest_path(runs_root, sweep)
    data = json.loads(path.read_text()) if path.exists() else {"sweep": sweep, "jobs": {}}
    data["results_root"] = str(Path(results_root).resolve())
    for spec, job in zip(specs, jobs):
        data["jobs"][spec.job_id] = {"spec": spec.to_dict(), "executor": executor,
                                     "cluster_job_id": str(job.job_id), "submitted_at": now()}
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
