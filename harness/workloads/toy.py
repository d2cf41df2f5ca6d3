"""A small real workload for testing the launch machinery before the detector is plugged in.

Workload ``toy``, every mode: a linear model trained with SGD + momentum for ``toy.steps`` steps on
deterministic synthetic batches (CPU), saving a checkpoint after every step in ``run_dir`` and resuming
from it exactly. Under DDP each rank sees its own batches and gradients are averaged, so the ranks'
parameters stay identical. Overrides: ``toy.steps`` (int, 20), ``toy.step_sleep`` (seconds, 0),
``toy.fail`` (bool: raise before training), ``toy.lr`` (0.05).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from harness.job import MODES, JobSpec
from harness.workloads.base import Workload
from harness.workloads.methods import METHODS
from scaledet.files import atomic_torch_save

log = logging.getLogger(__name__)
FEATURES = 8


class ToyFailure(RuntimeError):
    """Raised on purpose by a toy job with ``toy.fail``."""


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def _batch(seed: int, step: int, rank: int, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step * 101 + rank)
    x = torch.randn(16, FEATURES, generator=gen)
    return x, x @ weight + 0.01 * torch.randn(16, 1, generator=gen)


def param_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def train_toy(spec: JobSpec, run_dir: Path) -> dict[str, Any]:
    steps, sleep = int(spec.override("toy.steps", 20)), float(spec.override("toy.step_sleep", 0.0))
    lr = float(spec.override("toy.lr", 0.05))
    if spec.override("toy.fail", False):
        raise ToyFailure(f"toy job {spec.job_id} fails on purpose (toy.fail=true)")
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    torch.manual_seed(spec.seed)
    model = torch.nn.Linear(FEATURES, 1)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    weight = torch.randn(FEATURES, 1, generator=torch.Generator().manual_seed(_stable_int(spec.dataset)))
    ckpt, start = run_dir / "checkpoint.pt", 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
        log.info("resumed from %s at step %d", ckpt, start)
        if rank == 0:
            with open(run_dir / "resumes.txt", "a") as stream:
                stream.write(f"{start}\n")
    for step in range(start, steps):
        x, y = _batch(spec.seed, step, rank, weight)
        loss = torch.nn.functional.mse_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rank == 0:
            atomic_torch_save({"step": step + 1, "model": model.state_dict(), "optimizer": opt.state_dict()}, ckpt)
        log.info("step %d/%d loss %.6f", step + 1, steps, loss.item())
        time.sleep(sleep)
    x, y = _batch(spec.seed, 10**6, 0, weight)
    with torch.no_grad():
        eval_loss = torch.nn.functional.mse_loss(model(x), y).item()
    digest = param_digest(model)
    (run_dir / f"params.rank{rank}.json").write_text(json.dumps({"rank": rank, "world": world, "digest": digest}))
    return {
        "metrics": {"eval_loss": eval_loss, "AP": 1.0 / (1.0 + eval_loss)},
        "config": {"workload": "toy", "steps": steps, "lr": lr, "world_size": world},
        "text_encoder": "none (toy workload)",
    }


TOY = Workload(name="toy", work=dict.fromkeys(MODES, train_toy), methods=METHODS)
