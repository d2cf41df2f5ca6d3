"""`harness status`: the state of a sweep's result cells (pending / running / done / failed) with SLURM state."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from tabulate import tabulate

from harness.run.manifest import manifest_path
from harness.run.sweepstate import sweep_cells
from scaledet.errors import ConfigError

HELP = "show the state of a sweep's result cells"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sweep", help="sweep id (default: every sweep under --runs-root)")
    parser.add_argument("--runs-root", type=Path, default=Path("runs"), help="runs folder (default: runs)")
    parser.add_argument("--results-root", type=Path, help="results folder (default: the manifest's)")
    parser.add_argument("--summary", action="store_true", help="only counts per state")


def run(args: argparse.Namespace) -> int:
    sweeps = [args.sweep] if args.sweep else sorted(p.stem for p in (args.runs_root / "_manifests").glob("*.json"))
    if not sweeps:
        raise ConfigError(f"no sweeps under {args.runs_root} (no {manifest_path(args.runs_root, '*')})")
    for sweep in sweeps:
        cells = sweep_cells(args.runs_root, sweep, args.results_root)
        counts = Counter(cell.state for cell in cells)
        summary = ", ".join(f"{counts[s]} {s}" for s in ("done", "failed", "running", "pending"))
        print(f"sweep {sweep}: {len(cells)} cells: {summary}")
        if not args.summary:
            rows = [[c.job_id, c.mode, c.dataset, c.method, c.seed, "" if c.shots is None else c.shots, c.state,
                     c.executor, c.cluster_job_id or "", c.slurm_state or ""] for c in cells]
            print(tabulate(rows, headers=["job", "mode", "dataset", "method", "seed", "shots", "state",
                                          "executor", "cluster id", "SLURM state"]))
    return 0
