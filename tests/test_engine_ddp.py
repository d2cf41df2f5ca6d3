"""DDP: two CPU processes (gloo, env:// initialisation as torchrun/submitit set it) end with identical weights."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp
from engine_fixtures import packages, tiny_config

from scaledet.checkpoints import load_checkpoint
from scaledet.detector import build_detector


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, tmp: str, tests_dir: str) -> None:
    sys.path.insert(0, tests_dir)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist
    from engine_fixtures import packages, tiny_config

    from scaledet.engine import train

    data, space = packages(Path(tmp) / f"data{rank}")
    result = train(tiny_config(3, 3), [data], space, Path(tmp) / "run", device="cpu")
    torch.save({"state": result.model.state_dict(), "consumed": result.step}, Path(tmp) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_cpu_processes_end_identical(tmp_path):
    port = _free_port()
    mp.spawn(_worker, args=(2, port, str(tmp_path), str(Path(__file__).parent)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)["state"]
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)["state"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = load_checkpoint(tmp_path / "run")
    assert state["step"] == 3 and state["sampler"]["world_size"] == 2 and state["sampler"]["consumed"] == 6
    # and training moved the weights away from the (seeded) initialisation
    _, space = packages(tmp_path / "init")
    torch.manual_seed(0)
    init = build_detector(tiny_config(3, 3).model, space).state_dict()
    assert any(not torch.equal(init[k], a[k]) for k in a)
