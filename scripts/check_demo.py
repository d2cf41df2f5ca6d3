"""Check a finished `harness run --suite demo`: every cell done, the report and its figures written, and AP
above floors that a broken pipeline cannot reach (CI runs this after the README's main command).

Floors (COCO AP, fractions): a third or less of what the demo measured on 2 CPU cores (README, "The demo":
fine-tuned 0.525 on Mushrooms and 0.321 on Raccoon, direct 0.307 on Raccoon), and ten times what an
untrained or mis-wired detector scores (AP < 0.01 at random init; the 1- and 2-dataset checkpoints of the
scaling sweep, which never saw a raccoon, score 0.001-0.009 on it): fine-tuned AP on every downstream
dataset >= FINETUNE_FLOOR; direct AP on Raccoon, whose class is seen upstream, >= DIRECT_SEEN_FLOOR. Direct
transfer to Mushrooms' unseen classes (0.061) is reported, not floored: 5 test images are too few.

    python scripts/check_demo.py [--results-root results] [--report-dir reports/demo]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from harness.catalog.datasets import get_suite
from harness.run.results import load_frame

FINETUNE_FLOOR = 0.10
DIRECT_SEEN_FLOOR = 0.10
SEEN_DOWNSTREAM = "Raccoon"


def problems(results_root: Path, report_dir: Path) -> list[str]:
    """Everything wrong with the demo's results and report (empty when all is well)."""
    found: list[str] = []
    frame = load_frame(results_root)
    frame = frame[frame["suite"] == "demo"]
    if frame.empty:
        return [f"no demo results under {results_root}"]
    failed = sorted(set(frame.loc[frame["status"] == "failed", "job_id"]))
    found += [f"cell {job} failed (see `harness status`)" for job in failed]
    ap = frame[(frame["metric"] == "AP") & frame["class_name"].isna()]
    for dataset in get_suite("demo").datasets:
        for mode, floor in (("finetune", FINETUNE_FLOOR), ("direct", DIRECT_SEEN_FLOOR if dataset == SEEN_DOWNSTREAM else None)):
            values = ap[(ap["dataset"] == dataset) & (ap["mode"] == mode)]["value"]
            if values.empty:
                found.append(f"no {mode} AP for {dataset}")
            elif floor is not None and values.max() < floor:
                found.append(f"{mode} AP on {dataset} is {values.max():.3f} < floor {floor}")
    report = report_dir / "README.md"
    if not report.is_file():
        return found + [f"no report at {report}"]
    for link in re.findall(r"\]\(([^)]+\.png)\)", report.read_text()):
        image = report_dir / link
        if not image.is_file() or image.stat().st_size < 1000:
            found.append(f"figure {image} missing or empty")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--report-dir", type=Path, default=Path("reports/demo"))
    args = parser.parse_args()
    found = problems(args.results_root, args.report_dir)
    for line in found:
        print(f"check_demo: {line}", file=sys.stderr)
    print(f"check_demo: {'FAILED' if found else 'ok'}: {args.results_root}, {args.report_dir}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
