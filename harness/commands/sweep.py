"""`harness sweep FILE.yaml...`: run the sweeps YAML files describe (see harness.plan.sweepfile for the format).

A file may hold several sweeps (``---``-separated documents); they run in file order, files in the order given.
Every file is read and checked before anything is submitted (a global ``data.batch_size`` that a job's ranks,
resources ``nodes`` x ``ntasks_per_node``, do not divide included). ``--dry-run`` prints each sweep's stages and
cells (with whether a result already exists under ``--results-root``, and each training cell's batch: global and
per rank) and a GPU-hour estimate (``harness.workloads.scaledet.budget``), then stops: nothing is submitted and
no file or folder is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tabulate import tabulate

from harness.commands.launching import add_launch_arguments, launch_sweeps, options_from_args
from harness.plan.sweepfile import SweepFile, load_sweep_files
from harness.run.orchestrate import default_sweep_id, sweep_batches
from harness.run.results import cell_states
from harness.workloads.scaledet import budget
from scaledet.errors import ConfigError

HELP = "run the sweeps described by YAML files (--dry-run: print the grid and GPU-hour estimate)"
HEADERS = ["stage", "mode", "method", "dataset", "upstream", "seed", "shots", "job id", "result", "batch", "GPU-h",
           "estimate"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE", help="sweep YAML file(s)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the job grid and GPU-hour estimate; submit nothing, write nothing")
    add_launch_arguments(parser)


def run(args: argparse.Namespace) -> int:
    sweeps = [(path, number, len(docs), sweep) for path in args.files
              for docs in [load_sweep_files(path)] for number, sweep in enumerate(docs, start=1)]
    batches = [_checked_batches(path, number, count, sweep, args) for path, number, count, sweep in sweeps]
    if args.dry_run:
        return dry_run(sweeps, args, batches)
    return launch_sweeps([(_where(path, number, count), sweep) for path, number, count, sweep in sweeps], args)


def _checked_batches(path: Path, number: int, count: int, sweep: SweepFile,
                     args: argparse.Namespace) -> tuple[int, dict[str, tuple[int, int] | None]]:
    """``sweep_batches`` of one sweep as the command line launches it; an error names the file (and document)."""
    try:
        options = options_from_args(args, sweep)
        return sweep_batches(sweep, options.resources, options.executor)
    except ConfigError as error:
        raise ConfigError(f"{_where(path, number, count)}: sweep {sweep.sweep or '(unnamed)'}: {error}") from None


def _where(path: Path, number: int, count: int) -> str:
    return f"{path}" + (f", document {number}/{count}" if count > 1 else "")


def _batch(batches: dict[str, tuple[int, int] | None], job_id: str, ranks: int) -> str:
    """A training cell's batch, e.g. ``64 (8 per rank on 8 ranks)``; "checkpoint's" when only its starting
    checkpoint knows it; "-" for a cell that does not train (or a workload without batches)."""
    if job_id not in batches:
        return "-"
    split = batches[job_id]
    if split is None:
        return "checkpoint's"
    return f"{split[0]} ({split[1]} per rank on {ranks} rank{'s' if ranks > 1 else ''})"


def dry_run(sweeps: list[tuple[Path, int, int, SweepFile]], args: argparse.Namespace,
            batches: list[tuple[int, dict[str, tuple[int, int] | None]]]) -> int:
    """Print every sweep's grid and estimates, then the total (each job id counted once) and the assumptions.

    ``batches``: each sweep's ranks per job and its training cells' (global batch, per rank) (``sweep_batches``).
    """
    counted: dict[str, float | None] = {}
    done: set[str] = set()
    backbones: set[str] = set()
    for (path, number, count, sweep), (ranks, split) in zip(sweeps, batches, strict=True):
        stages = sweep.stages()
        specs = [spec for stage in stages for spec in stage]
        sweep_id = sweep.sweep or default_sweep_id(sweep.suite, specs)
        estimates = sweep.work.estimates(specs)
        states = cell_states(args.results_root, sweep_id, specs)
        print(f"{_where(path, number, count)}: sweep {sweep_id} (suite {sweep.suite}, workload {sweep.workload}, "
              f"executor {args.executor or sweep.executor}, {ranks} rank(s) per job): {len(specs)} cell(s) in "
              f"{len(stages)} stage(s)")
        rows = []
        for index, stage in enumerate(stages, start=1):
            for spec in stage:
                estimate = estimates[spec.job_id]
                rows.append([index, spec.mode, spec.method, spec.dataset, spec.override("upstream") or "-", spec.seed,
                             "-" if spec.shots is None else spec.shots, spec.job_id,
                             "-" if states[spec.job_id] == "missing" else states[spec.job_id],
                             _batch(split, spec.job_id, ranks),
                             "n/a" if estimate.hours is None else f"{estimate.hours:,.2f}", estimate.basis])
                counted.setdefault(spec.job_id, estimate.hours)
                if states[spec.job_id] == "done":
                    done.add(spec.job_id)
                if estimate.backbone:
                    backbones.add(estimate.backbone)
        print(tabulate(rows, headers=HEADERS, disable_numparse=True))
        known = [estimates[s.job_id].hours for s in specs if estimates[s.job_id].hours is not None]
        print(f"sweep {sweep_id}: {_total(known, len(specs))}\n")
    known = {job: hours for job, hours in counted.items() if hours is not None}
    todo = sum(hours for job, hours in known.items() if job not in done)
    print(f"total: {len(sweeps)} sweep(s), {len(counted)} cell(s) (a job id in several sweeps counted once), "
          + _total(list(known.values()), len(counted))
          + (f"; {todo:,.1f} GPU-hours for the cells without a result" if done else ""))
    print("assumptions: GPU-hours from published training rates, not measured here (harness.workloads.scaledet.budget); "
          "pretrain = max_steps x batch_size (global, all ranks) / rate; "
          "transfer = (finetune images, if any, + evaluation images) / rate, approximate")
    for name in sorted(backbones):
        rate = budget.RATES[name]
        print(f"  {name}: {rate.images_per_second:.2f} images/s/GPU ({rate.source})")
    print(f"dry run: nothing submitted, nothing written (results looked up under {args.results_root})")
    return 0


def _total(known: list[float], cells: int) -> str:
    """``"X GPU-hours"``, saying how many cells have no estimate (all of them: ``n/a``)."""
    if not known:
        return "n/a GPU-hours (no cell has an estimate)"
    missing = cells - len(known)
    return f"{sum(known):,.1f} GPU-hours" + (f" ({missing} cell(s) without an estimate, not counted)" if missing else "")
