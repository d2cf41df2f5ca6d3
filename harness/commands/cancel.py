"""`harness cancel`: cancel a sweep's SLURM jobs that have no result yet (scancel by job id)."""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
from pathlib import Path

from harness.run.sweepstate import sweep_cells
from scaledet.errors import ConfigError

HELP = "cancel the running jobs of a sweep"
log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sweep", required=True, help="sweep id")
    parser.add_argument("--runs-root", type=Path, default=Path("runs"), help="runs folder (default: runs)")
    parser.add_argument("--dry-run", action="store_true", help="only list what would be cancelled")


def run(args: argparse.Namespace) -> int:
    cells = [c for c in sweep_cells(args.runs_root, args.sweep) if c.state in ("pending", "running")]
    slurm = [c for c in cells if c.executor == "slurm" and c.cluster_job_id]
    others = [c for c in cells if c not in slurm]
    if others:
        print(f"{len(others)} unfinished cell(s) ran with debug/local executors and cannot be cancelled here")
    if not slurm:
        print(f"sweep {args.sweep}: nothing to cancel")
        return 0
    ids = [c.cluster_job_id for c in slurm]
    if args.dry_run:
        print("would cancel: " + " ".join(ids))
        return 0
    if shutil.which("scancel") is None:
        raise ConfigError("scancel not found: is this a SLURM login node?")
    subprocess.run(["scancel", *ids], check=True, timeout=60)
    print(f"sweep {args.sweep}: cancelled {len(ids)} SLURM job(s): {' '.join(ids)}")
    return 0
