"""Where the README's main command spends its time: ``harness run --suite demo`` in a fresh folder, in this
process (the demo runs on the debug executor, in-process), with the work functions' parts timed.

    python benchmarks/bench_demo.py [--label after]                   # this checkout
    PYTHONPATH=OLD_CHECKOUT python benchmarks/bench_demo.py --label before   # another checkout's code

Phases are exclusive wall times (a phase nested in another is not counted twice): ``pretrain steps`` and
``fine-tune steps`` (``scaledet.engine.train``), ``evaluation`` (prediction and scoring: pretrain evaluation,
direct transfer, model selection, fine-tune scoring), ``text encoder`` (building it and encoding label spaces),
``checkpoints`` (reading them), ``data`` (loading and checking the datasets), ``report`` (rendering it) and
``other`` (the rest: imports, planning, records, the runner). Prints a table, the demo's direct and fine-tune
means, and writes benchmarks/results/bench_demo_<label>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

STARTED = time.perf_counter()

import torch  # after the clock starts: a user waits for the imports too

from harness.cli import main as harness_main

TIMES: dict[str, float] = defaultdict(float)
STACK: list[list[float]] = []  # [start, time spent in nested phases]


def _timed(phase: str | Callable[[tuple], str], function: Callable) -> Callable:
    """``function`` with its wall time, less that of the timed calls nested in it, added to ``phase`` (or to the
    phase ``phase(args)`` names)."""
    def wrapper(*args, **kwargs):
        STACK.append([time.perf_counter(), 0.0])
        try:
            return function(*args, **kwargs)
        finally:
            started, nested = STACK.pop()
            spent = time.perf_counter() - started
            TIMES[phase(args) if callable(phase) else phase] += spent - nested
            if STACK:
                STACK[-1][1] += spent
    return wrapper


def _instrument() -> None:
    from harness.commands import launching
    from harness.workloads.scaledet import work
    from scaledet import checkpoints

    def training(args) -> str:
        return "pretrain steps" if len(args[1]) > 1 else "fine-tune steps"

    wraps = [(work, "train", training), (work, "score", "evaluation"), (work, "text_encoder", "text encoder"),
             (work, "encode", "text encoder"), (work, "load_source", "data"), (launching, "render_report", "report"),
             (checkpoints, "load_checkpoint", "checkpoints"), (work, "_load_source", "data")]
    if hasattr(work, "evaluate"):
        wraps.append((work, "evaluate", "evaluation"))
    for owner, name, phase in wraps:
        if hasattr(owner, name):
            setattr(owner, name, _timed(phase, getattr(owner, name)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="after", help="names the JSON file (e.g. before, after)")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    import harness

    _instrument()
    folder = Path(tempfile.mkdtemp(prefix="bench_demo_"))
    os.chdir(folder)
    code = harness_main(["run", "--suite", "demo"])
    total = time.perf_counter() - STARTED
    phases = dict(TIMES)
    phases["other"] = total - sum(phases.values())
    records = [json.loads(p.read_text()) for p in (folder / "results").glob("*/*.json")]
    means = {mode: statistics.fmean(r["metrics"]["AP"] for r in records if r["spec"]["mode"] == mode)
             for mode in ("direct", "finetune")}
    pretrain = [r for r in records if r["spec"]["mode"] == "pretrain"]
    print(f"harness run --suite demo ({Path(harness.__file__).parents[1]}), exit code {code}: {total:.0f} s, "
          f"{torch.get_num_threads()} threads")
    print(f"{'phase':<18}{'s':>8}{'share':>8}")
    for phase, spent in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"{phase:<18}{spent:>8.1f}{spent / total:>8.0%}")
    print("mean AP: direct {direct:.4f}, fine-tune {finetune:.4f}".format(**means))
    per_cell = {f"{r['spec']['mode']}/{r['spec']['dataset']}": {"wall_time_s": r["wall_time_s"],
                                                                "AP": r["metrics"]["AP"]} for r in records}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f"bench_demo_{args.label}.json"
    out.write_text(json.dumps({
        "command": "python " + " ".join(sys.argv), "code": str(Path(harness.__file__).parents[1]),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(), "exit_code": code, "total_s": total,
        "phases_s": phases, "mean_AP": means, "cells": per_cell,
        "pretrain_steps": pretrain[0]["metrics"].get("steps") if pretrain else None}, indent=1))
    print(f"wrote {out} (the run's folder: {folder})")
    return code


if __name__ == "__main__":
    sys.exit(main())
