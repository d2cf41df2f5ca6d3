"""CPU train-step and inference time: ScaleDet detector (cosine head, eq. 8 loss, sigmoid top-k) vs the stock
torchvision Faster R-CNN softmax head, same backbone, same FPN, same inputs, for n = 80 and 2249 labels.

    python benchmarks/bench_detector.py [--labels 80 2249] [--size 320] [--batch 2] [--repeats 5]

Ratios are ScaleDet / stock (< 1 = ScaleDet faster); both models are timed alternately in one process so
machine load hits both alike. Peak RSS is the process maximum after each phase. JSON goes to
benchmarks/results/bench_detector.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import statistics
import time
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


def build_pair(cfg: ModelConfig, n: int):
    space = LabelSpace.from_embeddings([f"l{i}" for i in range(n)], torch.randn(n, EMBED_DIM), "bench")
    torch.manual_seed(0)
    ours = build_detector(cfg, space)
    torch.manual_seed(0)
    stock = build_softmax_detector(cfg, n)
    stock.backbone.load_state_dict(ours.backbone.state_dict())
    stock.rpn.load_state_dict(ours.rpn.state_dict())
    return ours, stock


def bench(cfg: ModelConfig, n: int, size: int, batch: int, repeats: int) -> dict:
    ours, stock = build_pair(cfg, n)
    images, targets = inputs(size, batch, n)
    stock_targets = [{**t, "labels": t["labels"] + 1} for t in targets]
    row: dict = {"labels": n}
    opts = {m: torch.optim.Adam(m.parameters(), lr=1e-5) for m in (ours, stock)}
    times: dict[str, list[float]] = {"train_scaledet": [], "train_stock": [], "infer_scaledet": [], "infer_stock": []}
    for model in (ours, stock):
        model.train()
    for i in range(repeats + 1):  # first round is warm-up
        t_ours = train_step(ours, opts[ours], images, targets)
        t_stock = train_step(stock, opts[stock], images, stock_targets)
        if i:
            times["train_scaledet"].append(t_ours)
            times["train_stock"].append(t_stock)
    row["peak_rss_mb_after_train"] = peak_rss_mb()
    for model in (ours, stock):
        model.eval()
    for i in range(repeats + 1):
        t_ours, t_stock = infer(ours, images), infer(stock, images)
        if i:
            times["infer_scaledet"].append(t_ours)
            times["infer_stock"].append(t_stock)
    row["peak_rss_mb_after_inference"] = peak_rss_mb()
    with torch.inference_mode():  # how much post-processing each did (score threshold, NMS input)
        row["detections_scaledet"] = sum(len(o["boxes"]) for o in ours(images))
        row["detections_stock"] = sum(len(o["boxes"]) for o in stock(images))
    for key, values in times.items():
        row[f"{key}_ms"] = 1000 * statistics.median(values)
    row["train_ratio"] = row["train_scaledet_ms"] / row["train_stock_ms"]
    row["infer_ratio"] = row["infer_scaledet_ms"] / row["infer_stock_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[80, 2249])
    parser.add_argument("--backbone", default="effnet-lite0")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_detector.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = ModelConfig(backbone=args.backbone, fpn_channels=256, min_size_test=args.size, max_size_test=args.size)
    rows = []
    for n in args.labels:
        rows.append(bench(cfg, n, args.size, args.batch, args.repeats))
        r = rows[-1]
        log.info("n=%5d  train %.0f vs %.0f ms (x%.3f)  infer %.0f vs %.0f ms (x%.3f)  peak RSS %.0f MB",
                 n, r["train_scaledet_ms"], r["train_stock_ms"], r["train_ratio"], r["infer_scaledet_ms"],
                 r["infer_stock_ms"], r["infer_ratio"], r["peak_rss_mb_after_inference"])
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
            "processor": platform.processor(), "backbone": args.backbone, "image_size": args.size,
            "batch": args.batch, "repeats": args.repeats, "embed_dim": EMBED_DIM,
            "goal": "train_ratio <= 1.05 and infer_ratio <= 1.02 at n = 2249"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    tmp.replace(args.out)
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
