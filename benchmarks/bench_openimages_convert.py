"""Peak memory and time of the OpenImages CSV → COCO conversion on generated CSVs (250k and 1M box rows).

The real v6 train CSV has 14.6M rows for 1.74M images (8.4 boxes per image); the generated CSVs keep that
ratio, real MIDs and the real column layout, and an image-sizes CSV (so no image files are needed). Each
conversion runs in a fresh subprocess; its peak RSS is ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``
after it exits (a first child that only imports the module gives the baseline). The second run on the
same inputs is timed too: it must be a cache hit.

Run: ``python benchmarks/bench_openimages_convert.py``; writes ``benchmarks/results/bench_openimages_convert.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("bench_openimages_convert")
ROWS = (250_000, 1_000_000)
BOXES_PER_IMAGE = 8.4
HEADER = ["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
          "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"]


def generate(folder: Path, rows: int, seed: int = 0) -> tuple[Path, Path]:
    """A boxes CSV sorted by ImageID (as released) and its image-sizes CSV."""
    from harness.catalog.upstream_labels import upstream_classes

    mids = [c.mid for c in upstream_classes("openimages")]
    rng = random.Random(seed)
    n_images = max(1, int(rows / BOXES_PER_IMAGE))
    boxes, sizes = folder / f"boxes-{rows}.csv", folder / f"sizes-{rows}.csv"
    with boxes.open("w", newline="") as b, sizes.open("w", newline="") as s:
        box_writer, size_writer = csv.writer(b), csv.writer(s)
        box_writer.writerow(HEADER)
        size_writer.writerow(["ImageID", "Width", "Height"])
        written = 0
        for image in range(n_images):
            name = f"{image * 2654435761 % 2**64:016x}"
            size_writer.writerow([name, rng.randint(300, 1024), rng.randint(300, 1024)])
            count = rows - written if image == n_images - 1 else min(rows - written, rng.randint(1, 16))
            for _ in range(count):
                x0, y0 = rng.random() * 0.8, rng.random() * 0.8
                box_writer.writerow([name, "xclick", rng.choice(mids), 1, f"{x0:.6f}", f"{x0 + 0.1:.6f}",
                                     f"{y0:.6f}", f"{y0 + 0.15:.6f}", 0, 0, int(rng.random() < 0.05), 0, 0])
            written += count
    return boxes, sizes


def child(args: argparse.Namespace) -> None:
    from harness.catalog.openimages import convert_openimages

    if args.boxes is None:
        return  # baseline: imports only
    result = convert_openimages(args.boxes, args.out, image_sizes=args.sizes)
    print(json.dumps({"images": result.images, "annotations": result.annotations, "cached": result.cached}))


def run_child(*extra: str) -> tuple[dict, float, int]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", *extra], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (json.loads(done.stdout) if done.stdout.strip() else {}), seconds, peak_kib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--boxes", type=Path)
    parser.add_argument("--sizes", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--rows", type=int, nargs="+", default=list(ROWS))
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _, _, baseline = run_child()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sorted(args.rows):  # increasing, so each RUSAGE_CHILDREN max is this run's
            start = time.perf_counter()
            boxes, sizes = generate(Path(tmp), rows)
            generated = time.perf_counter() - start
            files = ["--boxes", str(boxes), "--sizes", str(sizes), "--out", str(Path(tmp) / "out")]
            counts, seconds, peak = run_child(*files)
            again, cached_seconds, _ = run_child(*files)
            row = {"rows": rows, "images": counts["images"], "csv_mib": round(boxes.stat().st_size / 2**20, 1),
                   "generate_s": round(generated, 1), "convert_s": round(seconds, 1),
                   "rows_per_s": round(rows / seconds), "peak_rss_mib": round(peak / 1024, 1),
                   "rerun_cached": again["cached"], "rerun_s": round(cached_seconds, 2)}
            log.info("%s", row)
            results.append(row)
    report = {"machine": "vm", "python": platform.python_version(),
              "baseline_rss_mib": round(baseline / 1024, 1), "results": results,
              "note": "peak RSS of the converting subprocess (ru_maxrss of children); baseline = a child that "
                      "only imports harness.catalog.openimages"}
    out = Path(__file__).parent / "results" / "bench_openimages_convert.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
