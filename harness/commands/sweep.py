"""`harness sweep FILE.yaml...`: run the sweeps YAML files describe (see harness.plan.sweepfile for the format).

A file may hold several sweeps (``---``-separated documents); they run in file order, files in the order given.
Every file is read and checked before anything is submitted (a global ``data.batch_size`` that a job's ranks,
resources ``nodes`` x ``ntasks_per_node``, do not divide included). ``--dry-run`` prints each sweep's stages and
cells (with whether a result already exists under ``--results-root``, and each training cell's batch: global and
per rank, and the steps it runs) and a GPU-hour estimate (``harness.workloads.scaledet.budget``;
``harness.run.dryrun``), then stops: nothing is submitted and no file or folder is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands.launching import add_launch_arguments, launch_sweeps, options_from_args
from harness.plan.sweepfile import SweepFile, load_sweep_files
from harness.run.dryrun import dry_run
from harness.run.orchestrate import sweep_batches
from scaledet.errors import ConfigError

HELP = "run the sweeps described by YAML files (--dry-run: print the grid and GPU-hour estimate)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE", help="sweep YAML file(s)")
    add_launch_arguments(parser)


def run(args: argparse.Namespace) -> int:
    sweeps = [(path, number, len(docs), sweep) for path in args.files
              for docs in [load_sweep_files(path)] for number, sweep in enumerate(docs, start=1)]
    batches = [_checked_batches(path, number, count, sweep, args) for path, number, count, sweep in sweeps]
    if args.dry_run:
        return dry_run([(_where(path, number, count), sweep) for path, number, count, sweep in sweeps], batches,
                       args.results_root, args.executor)
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
