"""Regenerate the fixed result store ``tests/golden/store`` (run by hand; the output is committed).

Usage: ``python tests/golden/make_store.py`` overwrites the store; the golden Markdown must then be
re-rendered into ``odinw13_report.md`` (``python tests/golden/make_store.py --render``) and the diff reviewed. AP values are
deterministic pseudo-random fractions; the class names are the real ODinW-13 ones.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
from pathlib import Path

from harness.job import JobSpec
from harness.run.results import ResultRecord, write_record

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from report_fixtures import (
    GOLDEN_MD,
    GOLDEN_STORE,
    ODINW13_CLASSES,
    record_of,
    render_golden,
    transfer_spec,
    work_output,
)

# (mode, method, upstream, seeds, shots, datasets left out, datasets whose runs failed)
PLAN = [
    ("direct", "scaledet", "LVIS", [0], [None], [], []),
    ("direct", "scaledet", "LVIS+COCO", [0, 1], [None], [], []),
    ("direct", "scaledet-hard", "LVIS+COCO", [0], [None], ["VehiclesOpenImages"], ["EgoHands"]),
    ("finetune", "scaledet", "LVIS+COCO", [0], [None], [], []),
    ("fewshot", "scaledet", "LVIS+COCO", [3, 30], [1, 3], [], []),
]


def record(spec: JobSpec, names: list[str], upstream: str, day: int, failed: bool) -> ResultRecord:
    base = random.Random(f"{spec.mode}{spec.method}{upstream}{spec.dataset}{spec.shots}")
    noise = random.Random(f"{spec.mode}{spec.method}{upstream}{spec.dataset}{spec.shots}{spec.seed}")
    per_class = {name: round(base.uniform(0.1, 0.85) + noise.uniform(-0.04, 0.04), 3) for name in names}
    ap = round(sum(per_class.values()) / len(per_class), 4)
    output = work_output({"AP": ap, "AP50": min(1.0, round(ap * 1.3, 4)), "AP75": round(ap * 0.9, 4)}, per_class)
    return record_of(spec, "golden", None if failed else output, finished_at=f"2026-11-{day:02d}T12:00:00+00:00",
                     git_sha="e1736a0", error="DataError: fixture failure")


def main() -> None:
    shutil.rmtree(GOLDEN_STORE, ignore_errors=True)
    for day, (mode, method, upstream, seeds, shots, left_out, failed) in enumerate(PLAN, start=18):
        for dataset, names in ODINW13_CLASSES.items():
            for seed in seeds:
                for k in shots:
                    if dataset not in left_out:
                        spec = transfer_spec("odinw13", dataset, mode, method, seed, k, upstream)
                        write_record(GOLDEN_STORE, record(spec, names, upstream, day, dataset in failed))


if __name__ == "__main__":
    if "--render" in sys.argv:
        with tempfile.TemporaryDirectory() as out:
            shutil.copyfile(render_golden(Path(out)), GOLDEN_MD)
    else:
        main()
