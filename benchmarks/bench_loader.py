"""Training input pipeline: images per second the training loader delivers (0, 1, 2 workers) against the images per
second a training step consumes, at the demo's settings and at the paper's 640 px large-scale jitter; goal: the
loader at least 2x the step.

    python benchmarks/bench_loader.py [--steps 30] [--train-steps 3] [--repeats 2] [--workers 0 1 2] [--channels-last]
    python benchmarks/bench_loader.py --steps 6 --train-steps 1 --repeats 1    # a quick run (~2 min)

- ``demo``: the config of the demo suite's pretrain cell as `harness run --suite demo` plans it (the suite settings
  of ``harness.plan.suite_settings``: 320 px LSJ at scale 0.8-1.2, a batch of 4, effnet-lite0, 128 RoIs per image,
  the ScaleDet Faster R-CNN), on the demo's three upstream training sets (real images, about 320x427).
- ``paper``: the paper's ScaleDet-R pretraining (``PAPER_R50`` of the upstream suite: CenterNet2 with its 3-stage
  cascade on R50, 640 px LSJ at scale 0.1-2.0, 2249 labels as L+C+O365+OID have), on the same real images
  re-encoded (JPEG, quality 90) with their longer side at 640 px, the size of COCO/Objects365 images; a batch of
  ``--paper-batch`` (the paper's 16 per GPU takes minutes a step on a CPU; images/s are per image either way).

Loader: the engine's own training loader (``scaledet.engine._loader``: sampler, decoding, augmentation, collate)
iterated alone for ``--steps`` batches after one warm-up batch (worker start-up excluded; it is reported).
Step: the engine's own training step (``_Loop.step``: forward, loss, backward, clipping, optimizer and scheduler
step) on batches loaded beforehand, ``--train-steps`` timed after one warm-up step (``--channels-last``: also with
``train.channels_last``, same weights, the two timed alternately). Loader rows: the fastest of ``--repeats`` fresh
loaders (the machine is shared; ``all_runs_images_per_s`` in the JSON has them all). Backbone weights are random
(none are downloaded; speed does not depend on their values). On this CPU machine the step runs on the same cores
the workers use; on a GPU the step is the GPU's and the loader has the CPU to itself, so the per-worker rate says
how many workers a GPU consuming R images/s needs for 2x: ``2 R / per_worker``. Prints a table and writes
benchmarks/results/bench_loader.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from harness.catalog import datasets as registry
from harness.job import JobSpec
from harness.plan.grid import plan
from harness.plan.suite_settings import PAPER_R50, suite_overrides
from harness.workloads.scaledet.work import settings
from scaledet.config import Config, preset, with_overrides
from scaledet.data import CocoDataset, load_coco
from scaledet.detector import build_detector
from scaledet.distributed import DistInfo
from scaledet.engine import _loader, _Loop, _sampler, apply_channels_last, configured_optimizer, lr_lambda
from scaledet.labels import LabelSpace

EMBED_DIM = 384  # MiniLM's, the offline text encoder (speed does not depend on the values)
PAPER_LABELS = 1203 + 80 + 365 + 601  # LVIS + COCO + Objects365 + OpenImages
GOAL = 2.0


def demo_config() -> Config:
    """The demo pretrain cell's config, built as the workload builds it from the planned spec."""
    (spec,) = plan("demo", list(registry.DEMO_UPSTREAM), ["pretrain"], ["scaledet"], [3], split_policy="test",
                   overrides=suite_overrides("demo", "pretrain"))
    return _config(spec)


def paper_config(batch: int) -> Config:
    (spec,) = plan("upstream", ["LVIS", "COCO"], ["pretrain"], ["scaledet"], [3],
                   overrides=suite_overrides("upstream", "pretrain"))
    cfg = _config(spec)
    assert cfg.data.train_size == 640 and cfg.model.detector == PAPER_R50.detector
    return with_overrides(cfg, [f"data.batch_size={batch}"])


def _config(spec: JobSpec) -> Config:
    _, overrides = settings(spec)
    base = preset("scaledet")
    cfg = with_overrides(replace(base, train=replace(base.train, seed=spec.seed)), overrides)
    return with_overrides(cfg, ["model.weights=null"])  # random init: nothing downloaded


def demo_sets() -> list[CocoDataset]:
    return [registry.load_split(registry.get_dataset(n, "demo"), "train") for n in registry.DEMO_UPSTREAM]


def resized_sets(sets: list[CocoDataset], side: int, folder: Path) -> list[CocoDataset]:
    """``sets`` with every image re-encoded (JPEG q90) so its longer side is ``side``, boxes scaled alike."""
    out = []
    for ds in sets:
        images, annotations = [], []
        for img in ds.images:
            with Image.open(ds.image_root / img["file_name"]) as im:
                im = im.convert("RGB")
                factor = side / max(im.size)
                size = (round(im.size[0] * factor), round(im.size[1] * factor))
                name = f"{ds.name}_{img['id']}.jpg"
                im.resize(size, Image.Resampling.BILINEAR).save(folder / name, quality=90)
            images.append({**img, "file_name": name, "width": size[0], "height": size[1]})
            sx, sy = size[0] / img["width"], size[1] / img["height"]
            annotations += [{**a, "bbox": [a["bbox"][0] * sx, a["bbox"][1] * sy, a["bbox"][2] * sx,
                                           a["bbox"][3] * sy]} for a in ds.annotations[img["id"]]]
        path = folder / f"{ds.name}.json"
        path.write_text(json.dumps({"images": images, "annotations": annotations,
                                    "categories": ds.source["categories"]}))
        out.append(load_coco(path, name=ds.name))
    return out


def label_space(sets: list[CocoDataset], total: int | None = None) -> LabelSpace:
    g = torch.Generator().manual_seed(0)
    spaces = [LabelSpace.from_embeddings(list(d.category_names), torch.randn(len(d.category_names), EMBED_DIM,
                                                                             generator=g), d.name) for d in sets]
    rest = (total or 0) - sum(len(s) for s in spaces)
    if rest > 0:  # the other upstream datasets' labels: the classifier's width, never a training target here
        spaces.append(LabelSpace.from_embeddings([f"other{i}" for i in range(rest)],
                                                 torch.randn(rest, EMBED_DIM, generator=g), "others"))
    return LabelSpace.concat(spaces)


def time_loader(cfg: Config, sets: list[CocoDataset], space: LabelSpace, workers: int, steps: int,
                repeats: int) -> dict[str, Any]:
    """The loader's images/s over ``steps`` batches after its first; the fastest of ``repeats`` fresh loaders (the
    least disturbed by other load on the machine)."""
    cfg = with_overrides(cfg, [f"data.num_workers={workers}"])
    info = DistInfo(0, 1, 0)
    batch = cfg.data.batch_size
    runs = []
    for _ in range(repeats):
        loader = _loader(cfg, sets, space, _sampler(cfg, sets, info), batch, torch.device("cpu"))
        started = time.perf_counter()
        iterator = iter(loader)
        next(iterator)  # warm-up: worker start-up, first batch
        first = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(steps):
            next(iterator)
        runs.append((steps * batch / (time.perf_counter() - started), first))
        del iterator, loader
    rate, first = max(runs)
    return {"workers": workers, "batches": steps, "batch": batch, "repeats": repeats, "first_batch_s": first,
            "images_per_s": rate, "per_worker_images_per_s": rate / max(workers, 1),
            "all_runs_images_per_s": [r for r, _ in runs]}


def time_steps(cfg: Config, sets: list[CocoDataset], space: LabelSpace, steps: int, variants: list[bool]
               ) -> list[dict[str, Any]]:
    """The engine's training step on ``steps`` batches loaded beforehand (after one warm-up step), per variant
    (``train.channels_last`` off/on: the same initial weights), the variants timed alternately so that load on
    the machine hits them alike; the fastest step of each (the least disturbed by other load: a conservative
    denominator for the loader/step ratio) and the median."""
    info, device = DistInfo(0, 1, 0), torch.device("cpu")
    sampler = _sampler(cfg, sets, info)
    batches = []
    for images, targets in _loader(with_overrides(cfg, ["data.num_workers=0"]), sets, space, sampler,
                                   cfg.data.batch_size, device):
        batches.append((images, targets))
        if len(batches) == steps + 1:
            break
    loops = []
    tmp = tempfile.TemporaryDirectory()
    for channels_last in variants:
        torch.manual_seed(cfg.train.seed)
        model = build_detector(cfg.model, space, load_weights=False)
        apply_channels_last(model, channels_last)
        optimizer = configured_optimizer([p for p in model.parameters() if p.requires_grad], cfg.train)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.train))
        run_cfg = with_overrides(cfg, [f"train.channels_last={str(channels_last).lower()}"])
        loops.append(_Loop(run_cfg, model.train(), model, optimizer, scheduler, _sampler(cfg, sets, info), info,
                           Path(tmp.name), device, space))
    times: list[list[float]] = [[] for _ in variants]
    for step, (images, targets) in enumerate(batches):
        for loop, spent in zip(loops, times):
            started = time.perf_counter()
            loop.step(images, targets, step)
            if step:  # the first is the warm-up
                spent.append(time.perf_counter() - started)
    tmp.cleanup()
    return [{"steps": steps, "batch": cfg.data.batch_size, "channels_last": channels_last, "s_per_step": min(spent),
             "median_s_per_step": statistics.median(spent), "images_per_s": cfg.data.batch_size / min(spent),
             "all_s_per_step": spent} for channels_last, spent in zip(variants, times)]


def describe(cfg: Config, images: str) -> dict[str, Any]:
    return {"detector": cfg.model.detector, "backbone": cfg.model.backbone, "weights": "random init",
            "augmentation": cfg.data.augmentation, "train_size": cfg.data.train_size,
            "scale_range": list(cfg.data.scale_range), "batch": cfg.data.batch_size, "images": images}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="loader batches timed per worker count")
    parser.add_argument("--train-steps", type=int, default=3, help="training steps timed per setting")
    parser.add_argument("--repeats", type=int, default=2, help="fresh loaders per worker count; the fastest counts")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", choices=["demo", "paper"], default=["demo", "paper"])
    parser.add_argument("--paper-batch", type=int, default=2, help="images per step at the paper's setting")
    parser.add_argument("--channels-last", action="store_true", help="also time the step with train.channels_last")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_loader.json")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.settings:
            sets = demo_sets()
            if name == "demo":
                cfg, space, images = demo_config(), label_space(sets), "demo upstream train splits (about 320x427)"
            else:
                sets = resized_sets(sets, 640, Path(tmp))
                cfg, space = paper_config(args.paper_batch), label_space(sets, PAPER_LABELS)
                images = "demo upstream train splits re-encoded at longer side 640 (JPEG q90)"
            print(f"[{name}] {cfg.model.detector} {cfg.model.backbone}, {cfg.data.augmentation} "
                  f"{cfg.data.train_size} px, batch {cfg.data.batch_size}, {len(space)} labels", flush=True)
            steps = time_steps(cfg, sets, space, args.train_steps, [False, True] if args.channels_last else [False])
            step = steps[0]
            loaders = [time_loader(cfg, sets, space, w, args.steps, args.repeats) for w in args.workers]
            for row in loaders:
                row["ratio_to_step"] = row["images_per_s"] / step["images_per_s"]
                row["meets_goal"] = row["ratio_to_step"] >= GOAL
            results.append({"setting": name, "config": describe(cfg, images), "labels": len(space),
                            "step": steps, "loader": loaders})
    print("\nloader: the fastest of --repeats loaders; step: the fastest step. workers 0: the loader runs in the "
          "training process, serially with the step (no overlap)")
    print(f"{'setting':<7} {'px':>4} {'batch':>5} {'step img/s':>10} {'workers':>7} {'loader img/s':>12} "
          f"{'per worker':>10} {'1st batch s':>11} {'loader/step':>11} {'>= 2x':>5}")
    for r in results:
        for row in r["loader"]:
            print(f"{r['setting']:<7} {r['config']['train_size']:>4} {r['config']['batch']:>5} "
                  f"{r['step'][0]['images_per_s']:>10.2f} {row['workers']:>7} {row['images_per_s']:>12.1f} "
                  f"{row['per_worker_images_per_s']:>10.1f} {row['first_batch_s']:>11.2f} "
                  f"{row['ratio_to_step']:>10.1f}x {'yes' if row['meets_goal'] else 'NO':>5}")
        for s in r["step"][1:]:
            print(f"{r['setting']:<7} step with channels_last: {s['images_per_s']:.2f} img/s, median step "
                  f"{s['median_s_per_step']:.2f} s (channels-first {r['step'][0]['images_per_s']:.2f} img/s, "
                  f"median step {r['step'][0]['median_s_per_step']:.2f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "device": "cpu", "goal_ratio": GOAL,
        "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
