"""Dry runs: a sweep's stages and cells as they would be launched, with GPU-hour estimates; nothing is submitted
and nothing is written. `harness sweep --dry-run` and `harness run --dry-run` print this."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from harness.plan.sweepfile import SweepFile
from harness.run.orchestrate import default_sweep_id
from harness.run.results import cell_states
from harness.workloads.scaledet import budget

HEADERS = ["stage", "mode", "method", "dataset", "upstream", "seed", "shots", "job id", "result", "batch", "steps",
           "GPU-h", "estimate"]
Batches = tuple[int, dict[str, tuple[int, int] | None]]  # ranks per job, job id -> (global batch, per rank)


def dry_run(sweeps: Sequence[tuple[str, SweepFile]], batches: Sequence[Batches], results_root: Path,
            executor: str | None) -> int:
    """Print every sweep's grid and estimates, then the total (each job id counted once) and the assumptions.

    ``sweeps``: (where it comes from, e.g. a file and document, the sweep); ``batches``: each sweep's ranks per job
    and its training cells' (global batch, per rank) (``harness.run.orchestrate.sweep_batches``); ``executor``:
    the command line's (``None``: each sweep's own).
    """
    counted: dict[str, float | None] = {}
    done: set[str] = set()
    backbones: set[str] = set()
    for (where, sweep), (ranks, split) in zip(sweeps, batches, strict=True):
        stages = sweep.stages()
        specs = [spec for stage in stages for spec in stage]
        sweep_id = sweep.sweep or default_sweep_id(sweep.suite, specs)
        estimates = sweep.work.estimates(specs)
        states = cell_states(results_root, sweep_id, specs)
        print(f"{where}: sweep {sweep_id} (suite {sweep.suite}, workload {sweep.workload}, "
              f"executor {executor or sweep.executor}, {ranks} rank(s) per job): {len(specs)} cell(s) in "
              f"{len(stages)} stage(s)" + (f"\n  {sweep.title}" if sweep.title else ""))
        rows = []
        for index, stage in enumerate(stages, start=1):
            for spec in stage:
                estimate = estimates[spec.job_id]
                rows.append([index, spec.mode, spec.method, spec.dataset, spec.override("upstream") or "-", spec.seed,
                             "-" if spec.shots is None else spec.shots, spec.job_id,
                             "-" if states[spec.job_id] == "missing" else states[spec.job_id],
                             _batch(split, spec.job_id, ranks),
                             "-" if estimate.steps is None else f"{estimate.steps:,}",
                             "n/a" if estimate.hours is None else f"{estimate.hours:,.2f}", estimate.basis])
                counted.setdefault(spec.job_id, estimate.hours)
                if states[spec.job_id] == "done":
                    done.add(spec.job_id)
                if estimate.backbone:
                    backbones.add(estimate.backbone)
        print(tabulate(rows, headers=HEADERS, disable_numparse=True))
        known = [estimates[s.job_id].hours for s in specs if estimates[s.job_id].hours is not None]
        print(f"sweep {sweep_id}: {_total(known, len(specs))}" + (f" ({sweep.title})" if sweep.title else "") + "\n")
    known = {job: hours for job, hours in counted.items() if hours is not None}
    todo = sum(hours for job, hours in known.items() if job not in done)
    print(f"total: {len(sweeps)} sweep(s), {len(counted)} cell(s) (a job id in several sweeps counted once), "
          + _total(list(known.values()), len(counted))
          + (f"; {todo:,.1f} GPU-hours for the cells without a result" if done else ""))
    print("assumptions: GPU-hours from published training rates, not measured here (harness.workloads.scaledet.budget); "
          "pretrain = max_steps x batch_size (global, all ranks) / rate; "
          "transfer = (finetune steps x batch, if any, + evaluation images) / rate, approximate")
    for name in sorted(backbones):
        rate = budget.RATES[name]
        print(f"  {name}: {rate.images_per_second:.2f} images/s/GPU ({rate.source})")
    print(f"dry run: nothing submitted, nothing written (results looked up under {results_root})")
    return 0


def _batch(batches: dict[str, tuple[int, int] | None], job_id: str, ranks: int) -> str:
    """A training cell's batch, e.g. ``64 (8 per rank on 8 ranks)``; "checkpoint's" when only its starting
    checkpoint knows it; "-" for a cell that does not train (or a workload without batches)."""
    if job_id not in batches:
        return "-"
    split = batches[job_id]
    if split is None:
        return "checkpoint's"
    return f"{split[0]} ({split[1]} per rank on {ranks} rank{'s' if ranks > 1 else ''})"


def _total(known: list[float], cells: int) -> str:
    """``"X GPU-hours"``, saying how many cells have no estimate (all of them: ``n/a``)."""
    if not known:
        return "n/a GPU-hours (no cell has an estimate)"
    missing = cells - len(known)
    return f"{sum(known):,.1f} GPU-hours" + (f" ({missing} cell(s) without an estimate, not counted)" if missing else "")
