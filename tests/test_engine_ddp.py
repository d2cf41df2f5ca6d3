"""DDP: two CPU processes (gloo, env:// initialisation as torchrun/submitit set it) split the global batch, end
with identical weights, and a run resumed from a checkpoint draws the images the uninterrupted run drew."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from engine_fixtures import free_port, packages, tiny_config

from scaledet.checkpoints import load_checkpoint, weights_digest
from scaledet.detector import build_detector
from scaledet.distributed import DistInfo
from scaledet.engine import _sampler

BATCH = 4  # global: 2 images per rank per step on 2 ranks
STEPS = 4


def _worker(rank: int, world: int, port: int, tmp: str, tests_dir: str, detector: str) -> None:
    sys.path.insert(0, tests_dir)
    from engine_fixtures import packages, rank_environment, tiny_config

    rank_environment(rank, world, port)
    import torch.distributed as dist

    from scaledet import engine

    drawn: list[tuple[str, int, list[int]]] = []  # (run, step, image ids this rank trained on)
    step_fn = engine._Loop.step

    def recording(self, images, targets, step):
        drawn.append((self.out_dir.name, step, [int(t["image_id"]) for t in targets]))
        return step_fn(self, images, targets, step)

    engine._Loop.step = recording
    data, space = packages(Path(tmp) / f"data{rank}")
    def config(steps: int):
        return tiny_config(steps, 2, data__batch_size=BATCH, model__detector=detector)

    straight = engine.train(config(STEPS), [data], space, Path(tmp) / "straight", device="cpu")
    engine.train(config(2), [data], space, Path(tmp) / "resumed", device="cpu")
    resumed = engine.train(config(STEPS), [data], space, Path(tmp) / "resumed", device="cpu")
    torch.save({"straight": straight.model.state_dict(), "resumed": resumed.model.state_dict(), "drawn": drawn,
                "steps": (straight.step, resumed.step)}, Path(tmp) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.parametrize("detector", ["faster_rcnn", "centernet2"])
def test_two_cpu_processes_split_the_global_batch_and_resume_exactly(tmp_path, detector):
    port = free_port()
    mp.spawn(_worker, args=(2, port, str(tmp_path), str(Path(__file__).parent), detector), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    a, b = ranks[0]["straight"], ranks[1]["straight"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(r["steps"] == (STEPS, STEPS) for r in ranks)

    def draws(rank: int, run: str) -> dict[int, list[int]]:
        return {step: ids for name, step, ids in ranks[rank]["drawn"] if name == run}

    for rank in range(2):
        straight, resumed = draws(rank, "straight"), draws(rank, "resumed")
        assert sorted(straight) == sorted(resumed) == list(range(STEPS))
        assert [len(ids) for ids in straight.values()] == [BATCH // 2] * STEPS  # each rank loads its share
        assert resumed == straight  # steps 0-1 before the restart, 2-3 after: the same images
    # together the ranks draw what one process with the same global batch draws, step by step
    data, space = packages(tmp_path / "single")
    single = itertools.islice(iter(_sampler(tiny_config(STEPS, 2), [data], DistInfo(0, 1, 0))), STEPS * BATCH)
    ids = [data.images[index]["id"] for index, _ in single]
    for step in range(STEPS):
        both = draws(0, "straight")[step] + draws(1, "straight")[step]
        assert sorted(both) == sorted(ids[step * BATCH : (step + 1) * BATCH])

    state = load_checkpoint(tmp_path / "resumed")
    assert state["step"] == STEPS and state["sampler"]["world_size"] == 2
    assert state["sampler"]["consumed"] == STEPS * BATCH // 2
    assert state["rank_digests"] == [weights_digest(state["model"])] * 2  # the ranks were in lockstep
    # and training moved the weights away from the (seeded) initialisation
    torch.manual_seed(0)
    init = build_detector(tiny_config(STEPS, 2, model__detector=detector).model, space).state_dict()
    assert any(not torch.equal(init[k], a[k]) for k in a)
    resumed = ranks[0]["resumed"]
    assert all(torch.equal(resumed[k], a[k]) for k in a)
