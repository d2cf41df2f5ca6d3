"""submitit executors by kind: ``debug`` (in this process), ``local`` (subprocesses), ``slurm``."""

from __future__ import annotations

from pathlib import Path

import submitit

from harness.plan.resources import EXECUTORS, Resources
from scaledet.names import check_name


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
