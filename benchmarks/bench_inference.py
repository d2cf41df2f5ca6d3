"""Images per second and a time profile of a prediction pass: the old ``scaledet.engine.predict`` (images decoded
one by one in the main process, batches of 2, the model's transform resizing) against the pipeline every scoring
path now uses (``scaledet.inference.predict``: loader workers decode, normalise, resize and pad, batches of one padded
size), at workers 0/2 and batch 1/4/8, on the demo's pretrained checkpoint and its real images. The old loop
runs at its batch of 2 (the baseline of "removed") and at batch 1, each image alone: the detections every new row
must equal (AP within 1e-3, else exit code 1).

    python benchmarks/bench_inference.py --checkpoint RUNS/<demo pretrain job>/checkpoints/last.pt [--repeats 2]
    python benchmarks/bench_inference.py --checkpoint ... --images 16 --threads 1 --test-size 800 1333

Same model, same images, same input size for every row. The profile is the main process's wall time split into:
``decode`` (image files to tensors), ``transform`` (normalise, resize, pad into a batch), ``forward`` (the
network: the model call minus its transform and post-processing), ``postprocess`` (boxes back to image pixels,
COCO rows), ``gather`` (ranks' rows to rank 0; one process here), ``scoring`` (``coco_eval``), ``workers`` (the
new pipeline's loader workers starting and stopping: the wait for a pass's first batch, and its end, where the
workers stop and the last batches' shared memory is released; once per pass) and ``wait`` (the rest: receiving
batches from the workers, waiting for them, Python overhead). Work done in loader workers is not main-process
time: it overlaps the forward pass. "removed" is the share of the old loop's main-process time outside the
forward pass that a row no longer spends; "per image" the same without what a pass pays once (``scoring``, which
both run on equal rows, and ``workers``). Prints a table and writes benchmarks/results/bench_inference.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from harness.catalog import datasets as registry
from scaledet import inference
from scaledet.data import CocoDataset, category_mapping, subset
from scaledet.detector_parts import InputTransform
from scaledet.engine import load_detector
from scaledet.evaluation import coco_eval
from scaledet.protocol import scoring_settings

PHASES = ("decode", "transform", "forward", "postprocess", "gather", "scoring", "workers", "wait")
TIMES: dict[str, float] = defaultdict(float)


def _timed(phase: str, function: Callable) -> Callable:
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            TIMES[phase] += time.perf_counter() - started
    return wrapper


@contextmanager
def _profiled() -> Iterator[None]:
    """Time the phases of both pipelines in this process (class and module attributes wrapped, then restored)."""
    targets = [(InputTransform, "normalize", "transform"), (InputTransform, "resize", "transform"),
               (GeneralizedRCNNTransform, "batch_images", "transform"), (InputTransform, "postprocess", "postprocess"),
               (inference, "read_image", "decode"), (inference, "padded_batch", "transform"),
               (inference, "resize_boxes", "postprocess"),
               (inference, "to_coco", "postprocess"), (inference, "gather_rows", "gather")]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in targets + [(inference, "_loader", "")]]
    for owner, name, phase in targets:
        setattr(owner, name, _timed(phase, getattr(owner, name)))
    loader = inference._loader
    inference._loader = lambda *args, **kwargs: _WorkersTimed(loader(*args, **kwargs))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


class _WorkersTimed:
    """A prediction loader whose worker processes' start and stop are timed as ``workers``: the wait for the first
    batch (worker processes starting, and one batch loading before the first forward pass) less the decoding and
    transforming it runs in this process (timed as those), and the end of the pass (the workers shut down, the
    loader's thread releases the last batches). A fixed cost per pass, not per image."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def __iter__(self):
        inner = TIMES["decode"] + TIMES["transform"]
        started = time.perf_counter()
        iterator = iter(self.loader)
        batch = next(iterator, None)
        TIMES["workers"] += time.perf_counter() - started - (TIMES["decode"] + TIMES["transform"] - inner)
        while batch is not None:
            yield batch
            del batch  # as the pipeline does: the loader's thread frees the batches
            started = time.perf_counter()
            batch = next(iterator, None)
        TIMES["workers"] += time.perf_counter() - started


def _model_call(model: torch.nn.Module) -> Callable:
    """The model's forward, timed as a whole (the ``forward`` phase is this minus its transform and postprocess)."""
    original = model.forward

    def call(*args, **kwargs):
        inner = TIMES["transform"] + TIMES["postprocess"]
        started = time.perf_counter()
        out = original(*args, **kwargs)
        TIMES["forward"] += time.perf_counter() - started - (TIMES["transform"] + TIMES["postprocess"] - inner)
        return out
    return call


@torch.inference_mode()
def old_predict(model, dataset: CocoDataset, settings, batch_size: int = 2) -> list[dict[str, Any]]:
    """``scaledet.engine.predict`` as it was before the inference pipeline (commit 25335c8), for the comparison."""
    space = inference.own_vocabulary(dataset, model.label_space)
    to_category = {v: k for k, v in category_mapping(dataset, space).items()}
    model.eval()
    results: list[dict[str, Any]] = []
    with model.scoring(space, settings.detections_per_image, settings.score_thresh):
        for start in range(0, len(dataset), batch_size):
            chunk = dataset.images[start : start + batch_size]
            images = [inference.read_image(dataset.image_root / img["file_name"]) for img in chunk]
            for img, out in zip(chunk, model(images), strict=True):
                results += inference.to_coco(img["id"], out, to_category)
    return results


def run_case(model, datasets: list[CocoDataset], pipeline: str, batch: int, workers: int) -> dict[str, Any]:
    settings = scoring_settings("coco")
    TIMES.clear()
    images, aps = 0, []
    started = time.perf_counter()
    with _profiled():
        model.forward = _model_call(model)
        try:
            for dataset in datasets:
                if pipeline == "old":
                    rows = old_predict(model, dataset, settings, batch)
                else:
                    rows = inference.predict(model, dataset, settings=settings,
                                             inference=inference.InferenceSettings(batch, workers))
                scoring = time.perf_counter()
                aps.append(coco_eval(dataset.source, rows)["AP"])
                TIMES["scoring"] += time.perf_counter() - scoring
                images += len(dataset)
        finally:
            del model.forward
    total = time.perf_counter() - started
    phases = {p: TIMES[p] for p in PHASES if p != "wait"}
    phases["wait"] = max(0.0, total - sum(phases.values()))
    return {"pipeline": pipeline, "batch": batch, "workers": workers, "images": images, "total_s": total,
            "images_per_s": images / total, "phases_s": phases, "outside_forward_s": total - phases["forward"],
            "AP": aps}


def _datasets(model, limit: int | None) -> list[CocoDataset]:
    """The checkpoint's own datasets' evaluation splits (real demo images), up to ``limit`` images in all."""
    found = []
    for name in model.label_space.datasets:
        spec = registry.get_dataset(name, "demo")
        for split in ("valid", "test"):
            found.append(registry.load_split(spec, split))
    if limit:
        kept, left = [], limit
        for dataset in found:
            if left <= 0:
                break
            kept.append(subset(dataset, [img["id"] for img in dataset.images[:left]]))
            left -= len(kept[-1])
        found = kept
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="the demo's pretrained checkpoint: runs/<pretrain job>/checkpoints/last.pt of a "
                             "`harness run --suite demo` (its runs/ folder)")
    parser.add_argument("--images", type=int, default=None, help="at most this many images (default: all)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each case; the fastest is reported")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of this process (default: torch's); 1 leaves the other cores to the "
                             "loader's workers, as a GPU's forward pass would")
    parser.add_argument("--test-size", type=int, nargs=2, metavar=("SHORT", "LONG"), default=None,
                        help="resize test images to this shorter side, longer side at most LONG (default: the "
                             "checkpoint's, the demo's 320 533; 800 1333 is the paper's detectron2 test size)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_inference.json")
    args = parser.parse_args()
    if not args.checkpoint.is_file():
        parser.error(f"--checkpoint {args.checkpoint} is not a file")
    model = load_detector(args.checkpoint, "cpu")
    if args.test_size:  # both pipelines resize with the model's transform (the new one with a copy of it)
        model.transform.min_size, model.transform.max_size = (args.test_size[0],), args.test_size[1]
    datasets = _datasets(model, args.images)
    # the old loop at its own batch of 2 (what every scoring path ran) and at batch 1 (each image alone: the
    # detections the new pipeline must equal at any batch, since it batches only images of one padded size)
    cases = [("old", 2, 0), ("old", 1, 0)] + [("new", b, w) for w in (0, 2) for b in (1, 4, 8)]
    if args.threads:
        torch.set_num_threads(args.threads)
    run_case(model, datasets[:1], "new", 1, 0)  # warm-up: first-call allocations, lazy imports
    runs: dict[tuple[str, int, int], list[dict[str, Any]]] = {case: [] for case in cases}
    for _ in range(args.repeats):  # round robin: a slow spell of a noisy machine hits every case alike
        for case in cases:
            runs[case].append(run_case(model, datasets, *case))
    rows = []
    for case in cases:
        rows.append(min(runs[case], key=lambda r: r["total_s"]))
        rows[-1]["repeats_total_s"] = [round(r["total_s"], 3) for r in runs[case]]
    old, alone = rows[0], rows[1]
    header = (f"{'pipeline':<8}{'batch':>6}{'workers':>8}{'img/s':>8}{'total':>8}"
              + "".join(f"{p:>12}" for p in PHASES) + f"{'outside fwd':>13}{'removed':>9}{'per image':>11}")
    test_size = (model.transform.min_size[-1], model.transform.max_size)
    print(f"{sum(len(d) for d in datasets)} real demo images, test size {test_size[0]} (longer side at most "
          f"{test_size[1]}), {torch.get_num_threads()} threads, checkpoint {args.checkpoint}")
    print(header)
    # "removed": of the old loop's main-process time outside the forward pass (batch 2); "per image": the same
    # without what a pass pays once, not per image (coco_eval, which both run on equal rows, and the workers' start
    # and stop, with the release of the last batches)
    def per_image(row: dict[str, Any]) -> float:
        return row["outside_forward_s"] - row["phases_s"]["scoring"] - row["phases_s"]["workers"]

    for row in rows:
        removed = 1 - row["outside_forward_s"] / old["outside_forward_s"]
        removed_predicting = 1 - per_image(row) / per_image(old)
        row.update(outside_forward_removed=removed, outside_forward_removed_per_image=removed_predicting)
        print(f"{row['pipeline']:<8}{row['batch']:>6}{row['workers']:>8}{row['images_per_s']:>8.2f}"
              f"{row['total_s']:>8.2f}" + "".join(f"{row['phases_s'][p]:>12.3f}" for p in PHASES)
              + f"{row['outside_forward_s']:>13.3f}{removed:>9.0%}{removed_predicting:>11.0%}")
    same = all(abs(statistics.fmean(r["AP"]) - statistics.fmean(alone["AP"])) < 1e-3 for r in rows[2:])
    print(f"mean AP: old b2 {statistics.fmean(old['AP']):.4f} (pairs padded to each other), old b1 (each image "
          f"alone) {statistics.fmean(alone['AP']):.4f}; new " + ", ".join(
              f"b{r['batch']}w{r['workers']} {statistics.fmean(r['AP']):.4f}" for r in rows[2:])
          + ("" if same else "  <- a new row differs from the old loop's batch 1 by more than 1e-3"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python " + " ".join(sys.argv), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(), "images": sum(len(d) for d in datasets),
        "test_size": list(test_size),
        "datasets": [d.name for d in datasets], "phases": PHASES, "rows": rows}, indent=1))
    print(f"wrote {args.out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
