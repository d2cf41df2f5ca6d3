"""What a sweep asks the scheduler for: the executor kinds and the resources of each job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from scaledet.names import check_name

EXECUTORS = ("debug", "local", "slurm")


@dataclass(frozen=True)
class Resources:
    """What each job asks the scheduler for. ``extra`` holds further sbatch flags (name → value)."""

    gpus_per_node: int = 0
    nodes: int = 1
    ntasks_per_node: int = 1
    cpus_per_task: int = 1
    partition: str | None = None
    time: int = 60  # minutes
    mem: str | None = None  # SLURM syntax, e.g. "4G"
    account: str | None = None
    qos: str | None = None
    extra: tuple[tuple[str, str], ...] = ()
    array_parallelism: int = 256

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "resources") -> Resources:
        names = {f.name for f in fields(cls)}
        for key in data:
            check_name("resource", key, names, where)
        values = dict(data)
        if "extra" in values:
            values["extra"] = tuple(sorted((str(k), str(v)) for k, v in dict(values["extra"]).items()))
        return cls(**values)

    def ranks(self, executor: str) -> int:
        """Processes (DDP ranks) each job runs as: nodes x ntasks_per_node; the debug executor runs one, in-process."""
        return 1 if executor == "debug" else self.nodes * self.ntasks_per_node

    def ranks_source(self, executor: str) -> str:
        """Where :meth:`ranks` comes from, for error messages."""
        if executor == "debug":
            return "the debug executor runs one process"
        return f"resources nodes {self.nodes} x ntasks_per_node {self.ntasks_per_node}"

    def executor_parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "timeout_min": self.time, "nodes": self.nodes, "tasks_per_node": self.ntasks_per_node,
            "cpus_per_task": self.cpus_per_task, "gpus_per_node": self.gpus_per_node,
            "slurm_array_parallelism": self.array_parallelism,
        }
        optional = {"slurm_partition": self.partition, "slurm_mem": self.mem, "slurm_account": self.account,
                    "slurm_qos": self.qos}
        params.update({k: v for k, v in optional.items() if v is not None})
        if self.extra:
            params["slurm_additional_parameters"] = dict(self.extra)
        return params
