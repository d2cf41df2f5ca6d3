"""Helpers for the launch tests: a toy sweep and comparing result files."""

from __future__ import annotations

from pathlib import Path

from harness.job import JobSpec
from harness.plan.grid import plan
from harness.run.results import iter_records


def toy_sweep(steps: int = 4, **overrides) -> list[JobSpec]:
    """The acceptance sweep's shape: 2 datasets × direct + finetune × 2 seeds, toy workload."""
    return plan("demo", ["NorthAmericaMushrooms", "Packages"], ["direct", "finetune"], ["scaledet"], [3, 30],
                overrides={"toy.steps": steps, **overrides})


def measured_records(root: Path, sweep: str) -> dict[str, dict]:
    return {record.job_id: record.measured() for record in iter_records(root, sweep)}
