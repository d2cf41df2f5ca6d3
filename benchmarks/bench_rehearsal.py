"""Where a rehearsal's time goes: the cells of sweep files rehearsed in this process (debug executor) under
cProfile, their time split by phase, and the start-up cost every SLURM job pays on top (a fresh interpreter
importing torch, torchvision and the harness). With ``--slurm`` the same files are rehearsed on the local SLURM
cluster too, for the wall time a CI run sees.

Run: ``python benchmarks/bench_rehearsal.py [FILE ...] [--slurm]`` (default: Table 7's Swin-T pretrain and
transfer files, 27 cells); writes ``benchmarks/results/bench_rehearsal.json``. Goal (issue 13): the paper sweeps'
128 cells in about 10 minutes of CI on 2 cores, i.e. a few seconds a cell.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from harness.cli import main as harness

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILES = [ROOT / "benchmarks/scaledet_sweeps/table7_pretrain_swin-t.yaml",
                 ROOT / "benchmarks/scaledet_sweeps/table7_transfer_swin-t.yaml"]
# phase -> (file suffix, function name) of the call whose cumulative time it is; phases nest (training
# includes its checkpoint writes), so the table lists both the phase and what it contains
PHASES = {
    "reading checkpoints (torch.load)": ("torch/serialization.py", "load"),
    "writing checkpoints (torch.save)": ("torch/serialization.py", "save"),
    "building detectors (random init)": ("scaledet/detector.py", "build_detector"),
    "training steps (forward + backward)": ("scaledet/engine.py", "step"),
    "evaluation (predict + COCO eval)": ("scaledet/inference.py", "evaluate"),
    "stand-in data written (once per rehearsal)": ("harness/run/rehearsal.py", "prepare"),
}
IMPORTS = "import torch, torchvision, harness.cli, harness.workloads.scaledet.work, scaledet.engine"


def _cumulative(stats: pstats.Stats) -> dict[str, float]:
    found = dict.fromkeys(PHASES, 0.0)
    for (path, _, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for phase, (suffix, function) in PHASES.items():
            if path.endswith(suffix) and name == function:
                found[phase] += cumulative
    return found


def _startup_s(repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORTS], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _rehearse(files: list[Path], root: Path, executor: str) -> tuple[float, int]:
    start = time.perf_counter()
    status = harness(["sweep", *map(str, files), "--rehearse", "--executor", executor, "--rehearsal-root", str(root)])
    return time.perf_counter() - start, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, default=DEFAULT_FILES)
    parser.add_argument("--slurm", action="store_true", help="also rehearse on the local SLURM cluster")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        profile = cProfile.Profile()
        profile.enable()
        debug_s, debug_status = _rehearse(args.files, Path(tmp) / "debug", "debug")
        profile.disable()
        cells = len(list((Path(tmp) / "debug" / "results").rglob("*.json")))
        stats = pstats.Stats(profile)
        phases = _cumulative(stats)
        slurm_s, slurm_status = _rehearse(args.files, Path(tmp) / "slurm", "slurm") if args.slurm else (None, None)
    startup = _startup_s()
    rows = [[phase, round(s, 1), f"{s / debug_s:.0%}", round(s / max(cells, 1), 2)] for phase, s in phases.items()]
    rows.append(["all (in this process)", round(debug_s, 1), "100%", round(debug_s / max(cells, 1), 2)])
    rows.append(["start-up of a fresh job process (median of 3)", "", "", round(startup, 2)])
    if slurm_s is not None:
        rows.append(["on SLURM (wall time, 2 cores)", round(slurm_s, 1), "", round(slurm_s / max(cells, 1), 2)])
    print(f"{cells} cells of {', '.join(f.name for f in args.files)}")
    print(tabulate(rows, headers=["phase", "s", "share", "s per cell"]))
    print("\nfunctions with the most time of their own (in this process):")
    stats.sort_stats("tottime").print_stats(12)
    out = ROOT / "benchmarks/results/bench_rehearsal.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "files": [f.name for f in args.files], "cells": cells, "debug_wall_s": debug_s, "phases_s": phases,
        "startup_s": startup, "slurm_wall_s": slurm_s, "exit_codes": [debug_status, slurm_status],
        "machine": platform.platform(), "python": platform.python_version()}, indent=1))
    profile_out = out.with_suffix(".prof")
    stats.dump_stats(profile_out)
    print(f"wrote {out} and {profile_out} (``python -m pstats`` reads it)")


if __name__ == "__main__":
    main()
