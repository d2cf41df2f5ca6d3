"""The harness's own overhead: plan + submit a 13 × 2 × 3 sweep, `status` and `load_frame()` over 1,000 results.

Submission uses submitit's debug executor without running the jobs (debug jobs run lazily on result()),
so this times planning, missing-cell checks, pickling runners and writing the manifest. Goal: < 5 s each.
Run: ``python benchmarks/bench_harness.py``; writes ``benchmarks/results/bench_harness.json``.
"""

from __future__ import annotations

import json
import logging
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tabulate import tabulate

from harness.job import JobSpec
from harness.plan.grid import plan
from harness.plan.resources import Resources
from harness.run.launch import submit
from harness.run.manifest import update_manifest
from harness.run.results import ResultRecord, load_frame, write_record
from harness.run.sweepstate import sweep_cells
from harness.workloads.toy import TOY

GOAL_S = 5.0
DATASETS = [f"Dataset{i:02d}" for i in range(13)]


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _fake_results(root: Path, runs: Path, n: int) -> None:
    specs = plan("bench", [f"D{i}" for i in range(n // 4)], ["direct", "finetune"], ["scaledet"], [3, 30])[:n]
    for i, spec in enumerate(specs):
        classes = {f"class{c}": (i + c) % 100 / 100 for c in range(10)}
        write_record(root, ResultRecord(
            sweep="bench", job_id=spec.job_id, spec=spec.to_dict(), status="failed" if i % 50 == 0 else "done",
            metrics={"AP": 0.4, "AP50": 0.6, "AP75": 0.45}, per_class_ap=classes, image_ids=list(range(50)),
            git_sha="0" * 40, host="bench", wall_time_s=1.0))

    class _Job:
        def __init__(self, i: int) -> None:
            self.job_id = f"1000_{i}"

    update_manifest(runs, "bench", root, "debug", specs, [_Job(i) for i in range(len(specs))])


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        specs: list[JobSpec] = []

        def plan_and_submit() -> None:
            specs[:] = plan("odinw13", DATASETS, ["direct", "finetune"], ["scaledet"], [3, 30, 300])
            submit(specs, sweep="s", results_root=tmp_path / "r", runs_root=tmp_path / "runs",
                   executor="debug", resources=Resources(), workload=TOY)

        rows.append(("plan + submit 13x2x3 (78 jobs, debug executor)", _timed(plan_and_submit)))
        _fake_results(tmp_path / "results", tmp_path / "runs", 1000)
        rows.append(("status over 1,000 cells", _timed(lambda: sweep_cells(tmp_path / "runs", "bench"))))
        frame = []
        rows.append(("load_frame over 1,000 result files",
                     _timed(lambda: frame.append(load_frame(tmp_path / "results", "bench")))))
    table = [(name, f"{seconds:.3f}", "yes" if seconds < GOAL_S else "NO") for name, seconds in rows]
    print(tabulate(table, headers=["step", "seconds", f"< {GOAL_S:.0f} s"]))
    print(f"load_frame rows: {len(frame[0])}")
    out = Path(__file__).parent / "results" / "bench_harness.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": platform.node(), "python": platform.python_version(), "goal_s": GOAL_S,
                               "results": [{"step": n, "seconds": round(s, 4)} for n, s in rows]}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
