"""CPU train-step time, inference time and peak memory of two detectors on the same backbone, FPN and inputs, for
n = 80 and 2249 labels.

    python benchmarks/bench_detector.py [--labels 80 2249] [--size 320] [--batch 2] [--repeats 5]
    python benchmarks/bench_detector.py --detector centernet2 [--demo-ap]

Default: the ScaleDet Faster R-CNN (cosine head, eq. 8 loss, sigmoid top-k) vs the stock torchvision Faster R-CNN
softmax head; ratios ScaleDet / stock. ``--detector centernet2``: the ScaleDet CenterNet2 (the paper's, 3-stage
cascade) vs the ScaleDet Faster R-CNN; ratios CenterNet2 / Faster R-CNN. Both models are timed alternately in one
process so machine load hits both alike (< 1 = the first faster). Peak memory: the process' peak RSS after each
phase, and (``--detector centernet2``) each model's own peak RSS over a training step and an inference pass, measured
in a fresh child process per model.
``--demo-ap`` also runs the README's main command (``harness run --suite demo``) once per detector, the same
steps and seeds (``--set model.detector=...``), in fresh folders, and reports each one's mean downstream AP
(direct and fine-tune). JSON goes to benchmarks/results/bench_detector[_centernet2].json.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import platform
import queue as queue_module
import resource
import statistics
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from scaledet.config import ModelConfig
from scaledet.detector import build_detector, build_softmax_detector
from scaledet.labels import LabelSpace

log = logging.getLogger("bench_detector")
EMBED_DIM = 384  # MiniLM, the offline text encoder


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def inputs(size: int, batch: int, n: int, seed: int = 0):
    """Random images with 3 random boxes each; labels for ScaleDet (0..n-1) and the stock head (1..n)."""
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, size, size, generator=g) for _ in range(batch)]
    targets = []
    for _ in range(batch):
        xy = torch.rand(3, 2, generator=g) * size * 0.6
        wh = 16 + torch.rand(3, 2, generator=g) * size * 0.35
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(0, n, (3,), generator=g)})
    return images, targets


def train_step(model, optimizer, images, targets) -> float:
    start = time.perf_counter()
    losses = model(images, targets)
    total = sum(v for k, v in losses.items() if k.startswith("loss"))
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return time.perf_counter() - start


@torch.inference_mode()
def infer(model, images) -> float:
    start = time.perf_counter()
    model(images)
    return time.perf_counter() - start


def label_space(n: int) -> LabelSpace:
    return LabelSpace.from_embeddings([f"l{i}" for i in range(n)], torch.randn(n, EMBED_DIM), "bench")


def build_pair(cfg: ModelConfig, n: int, against: str):
    """(first, second, second's label offset): ScaleDet vs stock (labels 1..n), or CenterNet2 vs Faster R-CNN."""
    space = label_space(n)
    if against == "centernet2":
        torch.manual_seed(0)
        first = build_detector(replace(cfg, detector="centernet2"), space)
        torch.manual_seed(0)
        second = build_detector(replace(cfg, detector="faster_rcnn"), space)
        second.backbone.load_state_dict(first.backbone.state_dict())
        return first, second, 0
    torch.manual_seed(0)
    ours = build_detector(cfg, space)
    torch.manual_seed(0)
    stock = build_softmax_detector(cfg, n)
    stock.backbone.load_state_dict(ours.backbone.state_dict())
    stock.rpn.load_state_dict(ours.rpn.state_dict())
    return ours, stock, 1


def bench(cfg: ModelConfig, n: int, size: int, batch: int, repeats: int, against: str = "stock") -> dict:
    first, second, offset = build_pair(cfg, n, against)
    a, b = ("centernet2", "faster_rcnn") if against == "centernet2" else ("scaledet", "stock")
    images, targets = inputs(size, batch, n)
    second_targets = [{**t, "labels": t["labels"] + offset} for t in targets]
    row: dict = {"labels": n}
    opts = {m: torch.optim.Adam(m.parameters(), lr=1e-5) for m in (first, second)}
    times: dict[str, list[float]] = {f"train_{a}": [], f"train_{b}": [], f"infer_{a}": [], f"infer_{b}": []}
    for model in (first, second):
        model.train()
    for i in range(repeats + 1):  # first round is warm-up
        t_first = train_step(first, opts[first], images, targets)
        t_second = train_step(second, opts[second], images, second_targets)
        if i:
            times[f"train_{a}"].append(t_first)
            times[f"train_{b}"].append(t_second)
    row["peak_rss_mb_after_train"] = peak_rss_mb()
    for model in (first, second):
        model.eval()
    for i in range(repeats + 1):
        t_first, t_second = infer(first, images), infer(second, images)
        if i:
            times[f"infer_{a}"].append(t_first)
            times[f"infer_{b}"].append(t_second)
    row["peak_rss_mb_after_inference"] = peak_rss_mb()
    with torch.inference_mode():  # how much post-processing each did (score threshold, NMS input)
        row[f"detections_{a}"] = sum(len(o["boxes"]) for o in first(images))
        row[f"detections_{b}"] = sum(len(o["boxes"]) for o in second(images))
    for key, values in times.items():
        row[f"{key}_ms"] = 1000 * statistics.median(values)
    row["train_ratio"] = row[f"train_{a}_ms"] / row[f"train_{b}_ms"]
    row["infer_ratio"] = row[f"infer_{a}_ms"] / row[f"infer_{b}_ms"]
    if against == "centernet2":
        for detector in (a, b):
            row[f"own_peak_rss_mb_{detector}"] = own_peak_rss(replace(cfg, detector=detector), n, size, batch)
    return row


def vm_hwm_mb() -> float:
    """This process' own peak RSS (``VmHWM``; ``ru_maxrss`` would carry the parent's peak across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mb()


def _one_model_peak(cfg: ModelConfig, n: int, size: int, batch: int, out) -> None:
    torch.manual_seed(0)
    model = build_detector(cfg, label_space(n)).train()
    images, targets = inputs(size, batch, n)
    train_step(model, torch.optim.Adam(model.parameters(), lr=1e-5), images, targets)
    infer(model.eval(), images)
    out.put(vm_hwm_mb())


def own_peak_rss(cfg: ModelConfig, n: int, size: int, batch: int) -> float:
    """Peak RSS (MB) of a fresh process that builds ``cfg``'s detector, takes one training step and one inference."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_one_model_peak, args=(cfg, n, size, batch, queue))
    child.start()
    while True:
        try:
            peak = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not child.is_alive():
                raise RuntimeError(f"the memory probe of {cfg.detector} exited with code {child.exitcode}") from None
    child.join()
    return peak


def demo_ap(detector: str) -> dict:
    """Mean downstream AP (direct, fine-tune) of ``harness run --suite demo --set model.detector=<detector>`` run
    in a fresh folder (the README's main command, same steps and seeds), and its wall time."""
    from harness.run.results import load_frame

    with tempfile.TemporaryDirectory(prefix=f"demo-{detector}-") as folder:
        start = time.perf_counter()
        subprocess.run(["harness", "run", "--suite", "demo", "--set", f"model.detector={detector}"],
                       cwd=folder, check=True)
        wall = time.perf_counter() - start
        frame = load_frame(Path(folder) / "results")
    ap = frame[(frame["suite"] == "demo") & (frame["metric"] == "AP") & frame["class_name"].isna()]
    row = {"detector": detector, "wall_s": wall}
    for mode in ("direct", "finetune"):
        per_dataset = ap[ap["mode"] == mode].groupby("dataset")["value"].mean()
        row[f"{mode}_AP"] = {k: float(v) for k, v in per_dataset.items()}
        row[f"{mode}_mean_AP"] = float(per_dataset.mean())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[80, 2249])
    parser.add_argument("--detector", choices=["stock", "centernet2"], default="stock",
                        help="what the ScaleDet Faster R-CNN is compared with (default: the stock softmax head)")
    parser.add_argument("--demo-ap", action="store_true", help="with --detector centernet2: the demo's AP of both")
    parser.add_argument("--backbone", default="effnet-lite0")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    suffix = "" if args.detector == "stock" else f"_{args.detector}"
    out = args.out or Path(__file__).parent / "results" / f"bench_detector{suffix}.json"
    cfg = ModelConfig(backbone=args.backbone, fpn_channels=256, min_size_test=args.size, max_size_test=args.size)
    rows = []
    names = ("CenterNet2", "Faster R-CNN") if args.detector == "centernet2" else ("ScaleDet", "stock")
    for n in args.labels:
        rows.append(bench(cfg, n, args.size, args.batch, args.repeats, args.detector))
        r = rows[-1]
        first, second = (k[len("train_"):-len("_ms")] for k in r if k.startswith("train_") and k.endswith("_ms"))
        log.info("n=%5d  train %s %.0f vs %s %.0f ms (x%.3f)  infer %.0f vs %.0f ms (x%.3f)  peak RSS %.0f MB", n,
                 names[0], r[f"train_{first}_ms"], names[1], r[f"train_{second}_ms"], r["train_ratio"],
                 r[f"infer_{first}_ms"], r[f"infer_{second}_ms"], r["infer_ratio"], r["peak_rss_mb_after_inference"])
        if args.detector == "centernet2":
            log.info("        own peak RSS: CenterNet2 %.0f MB, Faster R-CNN %.0f MB",
                     r["own_peak_rss_mb_centernet2"], r["own_peak_rss_mb_faster_rcnn"])
    demo = []
    if args.demo_ap and args.detector == "centernet2":
        for detector in ("faster_rcnn", "centernet2"):
            demo.append(demo_ap(detector))
            d = demo[-1]
            log.info("demo %-12s direct mean AP %.3f  fine-tune mean AP %.3f  (%.0f s)", detector,
                     d["direct_mean_AP"], d["finetune_mean_AP"], d["wall_s"])
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
            "processor": platform.processor(), "backbone": args.backbone, "image_size": args.size,
            "batch": args.batch, "repeats": args.repeats, "embed_dim": EMBED_DIM, "compared_with": args.detector,
            "goal": ("train_ratio <= 1.05 and infer_ratio <= 1.02 at n = 2249" if args.detector == "stock" else
                     "measure: the cost of the paper's detector against ours, and the demo AP of each")}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows, "demo": demo}, indent=2))
    tmp.replace(out)
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
