"""What `harness run` and `harness sweep` share: the launch options, running sweeps (for real or as a
rehearsal) and rendering their reports."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from harness.plan.resources import EXECUTORS, Resources
from harness.plan.sweepfile import SweepFile
from harness.reporting import render_report
from harness.run.orchestrate import Entry, LaunchOptions, launch_all
from harness.run.rehearsal import DEFAULT_ROOT, Rehearsal, cell_states, free_checkpoints, summary
from scaledet.errors import ConfigError


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `sweep`: where things go, which executor, what to re-run, dry runs."""
    parser.add_argument("--dry-run", action="store_true",
                        help="print the job grid, steps and GPU-hour estimate; submit nothing, write nothing")
    parser.add_argument("--executor", choices=EXECUTORS, help="debug (in-process), local or slurm")
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--runs-root", type=Path, default=Path("runs"))
    parser.add_argument("--overwrite", action="store_true", help="recompute cells that already have results")
    parser.add_argument("--retry-failed", action="store_true", help="recompute cells with failure records")
    parser.add_argument("--no-wait", action="store_true", help="return after submitting (slurm/local)")
    parser.add_argument("--report-dir", type=Path, help="where the report goes (default: reports/<suite>)")
    parser.add_argument("--no-report", action="store_true", help="do not render the report at the end")
    parser.add_argument("--rehearse", action="store_true",
                        help="run every stage and cell of the plan for real at toy scale (CPU, stand-in data and "
                             "weights where absent) under --rehearsal-root, before spending GPU-days")
    parser.add_argument("--rehearsal-root", type=Path, default=DEFAULT_ROOT,
                        help=f"where a rehearsal writes its results, runs, reports and stand-in data "
                             f"(default: {DEFAULT_ROOT}/)")
    group = parser.add_argument_group("resources")
    for name, kind in (("gpus-per-node", int), ("nodes", int), ("ntasks-per-node", int), ("cpus-per-task", int),
                       ("partition", str), ("time", int), ("mem", str), ("account", str), ("qos", str),
                       ("array-parallelism", int)):
        group.add_argument(f"--{name}", type=kind, dest=f"res_{name.replace('-', '_')}")
    group.add_argument("--sbatch", action="append", default=[], metavar="FLAG=VALUE",
                       help="extra sbatch flag, e.g. --sbatch constraint=a100 (repeatable)")


def resources_from_args(args: argparse.Namespace, base: Resources | None = None) -> Resources:
    base = base or Resources()
    values = {k[4:]: v for k, v in vars(args).items() if k.startswith("res_") and v is not None}
    extra = dict(base.extra)
    for flag in args.sbatch:
        key, sep, value = flag.partition("=")
        if not sep:
            raise ConfigError(f"--sbatch {flag!r}: expected FLAG=VALUE")
        extra[key.lstrip("-")] = value
    merged = {**{f: getattr(base, f) for f in base.__dataclass_fields__}, **values, "extra": extra}
    return Resources.from_dict(merged)


def options_from_args(args: argparse.Namespace, sweep: SweepFile) -> LaunchOptions:
    return LaunchOptions(results_root=args.results_root, runs_root=args.runs_root, executor=args.executor,
                         resources=resources_from_args(args, sweep.resources), overwrite=args.overwrite,
                         retry_failed=args.retry_failed, no_wait=args.no_wait)


def launch_sweeps(sweeps: list[tuple[str, SweepFile]], args: argparse.Namespace) -> int:
    """Run (or rehearse, with ``--rehearse``) the sweeps, ``(where, sweep)`` each, in waves
    (``harness.run.orchestrate``); render each finished sweep's report when its workload has one."""
    if args.rehearse:
        return rehearse(sweeps, args)
    options = LaunchOptions(results_root=args.results_root, runs_root=args.runs_root, executor=args.executor,
                            overwrite=args.overwrite, retry_failed=args.retry_failed, no_wait=args.no_wait)
    entries = launch_all([Entry(sweep, where, resources_from_args(args, sweep.resources)) for where, sweep in sweeps],
                         options)
    for entry in entries:
        if not entry.pending:
            _report(entry, args.results_root, args.report_dir or Path("reports") / entry.sweep.suite, args)
    return 1 if any(entry.failed for entry in entries) else 0


def rehearse(sweeps: list[tuple[str, SweepFile]], args: argparse.Namespace) -> int:
    """The sweeps' real plans run at toy scale under the rehearsal root (``harness.run.rehearsal``); ends with
    the rehearsal summary, exit 1 when any cell failed."""
    if args.no_wait:
        raise ConfigError("--rehearse waits for every stage: drop --no-wait")
    started = time.time()
    rehearsal = Rehearsal(args.rehearsal_root, args.res_ntasks_per_node)
    entries = [Entry(sweep, where, resources_from_args(args, sweep.resources)) for where, sweep in sweeps]
    for entry in entries:  # the real run's resources must hold the real batch: checked as the real run would
        entry.resources = rehearsal.resources(entry.resources)
    saved = dict(os.environ)
    try:
        rehearsal.prepare(entries)  # sets the environment the jobs inherit (stand-in data roots, offline)
        options = LaunchOptions(results_root=rehearsal.results_root, runs_root=rehearsal.runs_root,
                                executor=args.executor, overwrite=args.overwrite, retry_failed=args.retry_failed,
                                rehearsal=True)
        launch_all(entries, options)
        reported = {e.sweep.suite: e for e in entries if e.sweep.work.reports and not args.no_report}
        for suite in reported:  # one report per suite over all the rehearsal's records (Table 1, 7, 8 sections)
            path = render_report(rehearsal.results_root, suite, rehearsal.reports_dir(suite),
                                 command=getattr(args, "command_line", None))
            print(f"report: {path}")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    states = cell_states(entries, rehearsal.results_root)
    checkpoints = free_checkpoints([s for e in entries for s in e.specs], states, rehearsal.runs_root)
    lines = summary(entries, states, rehearsal.results_root, time.time() - started, checkpoints)
    print("\n".join(lines))
    return 0 if lines[-1].endswith(" 0 failed") else 1


def _report(entry: Entry, results_root: Path, out: Path, args: argparse.Namespace) -> None:
    if entry.sweep.work.reports and not args.no_report:
        path = render_report(results_root, entry.sweep.suite, out, entry.sweep_id,
                             command=getattr(args, "command_line", None))
        print(f"report: {path}")
