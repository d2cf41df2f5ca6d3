"""The real `scaledet` workload on the real local SLURM cluster: cells of the demo run as a job array equal what
the debug executor computed (tests/demo_fixtures.py), a fine-tune preempted after its first model-selection
checkpoint is requeued and resumes from its selection state to the same record, and a 2-task job trains in
lockstep and writes the record its rank 0 computed."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from slurm_fixtures import sacct_field, slurm_cluster  # noqa: F401  (fixture)

from harness.cli import main
from harness.run.manifest import read_manifest
from harness.run.results import ResultRecord, iter_records
from harness.workloads.scaledet.work import load_source, score
from scaledet.checkpoints import load_checkpoint, weights_digest
from scaledet.config import load_config
from scaledet.detector import build_detector
from scaledet.labels import LabelSpace

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]


def _wait_for(what: str, ready: Callable[[], Any], limit: float) -> Any:
    deadline = time.time() + limit
    while time.time() < deadline:
        if value := ready():
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {limit:.0f} s")


def _comparable(record: ResultRecord) -> dict[str, Any]:
    """What two executors must agree on, bar where the starting checkpoint sits on disk."""
    measured = record.measured()
    measured["config"] = {**measured["config"], "work": {k: v for k, v in measured["config"]["work"].items()
                                                          if k != "start_checkpoint"}}
    return measured


def _in_background(args: list[str]) -> tuple[threading.Thread, dict[str, int]]:
    outcome: dict[str, int] = {}
    thread = threading.Thread(target=lambda: outcome.update(code=main(args)), daemon=True)
    thread.start()
    return thread, outcome


def _queue_state(cluster_id: str) -> str:
    """squeue's "STATE,REASON" of a job ("" once it left the queue)."""
    out = subprocess.run(["squeue", "-h", "-j", cluster_id, "-o", "%T,%r"], capture_output=True, text=True,
                         timeout=30, check=False).stdout
    return out.strip()


def _states(cluster_id: str) -> list[str]:
    try:
        return sacct_field(cluster_id, "State")
    except subprocess.CalledProcessError:
        return []


def test_real_cells_on_slurm_equal_the_debug_executors_even_when_preempted(demo, tmp_path: Path, capsys):
    """Raccoon's direct and fine-tune cells of the demo, again on SLURM (one job array, 2 CPUs per task as the
    debug run had): the fine-tune gets SIGUSR2 (SLURM's warning before a preemption or time limit) once its
    first model-selection step is saved, is requeued, resumes from ``selection.pt`` and its last checkpoint,
    and both records equal the debug executor's."""
    results, runs = demo.fork(tmp_path)
    finetune, direct = demo.cell("finetune", "Raccoon"), demo.cell("direct", "Raccoon")
    args = ["run", "--suite", "demo", "--datasets", "Raccoon", "--executor", "slurm", "--cpus-per-task", "2",
            "--time", "60", "--sweep", demo.sweep, "--results-root", str(results), "--runs-root", str(runs),
            "--no-report"]
    thread, outcome = _in_background(args)
    selection = runs / finetune.job_id / "selection.pt"
    _wait_for("the fine-tune's first model-selection step", selection.is_file, limit=900)
    jobs = read_manifest(runs, demo.sweep)["jobs"]
    cluster_id = jobs[finetune.job_id]["cluster_job_id"]
    assert torch.load(selection, weights_only=True)["scored"].keys() == {20}
    subprocess.run(["scancel", "--signal=USR2", cluster_id], check=True, timeout=30)
    # SLURM holds a requeued job ~2 min (its begin time) before it may start again; release it now, as an
    # operator can, once it is back in the queue waiting for that time
    _wait_for("the requeued job waiting for its begin time", lambda: _queue_state(cluster_id) == "PENDING,BeginTime",
              120)
    subprocess.run(["scontrol", "update", f"JobId={cluster_id}", "StartTime=now"], check=True, timeout=30)
    thread.join(timeout=900)
    assert outcome.get("code") == 0, capsys.readouterr().out[-2000:]
    out = capsys.readouterr().out
    assert "stage 1/2 (pretrain): 1 cells, 0 submitted, 1 already there" in out
    assert "stage 2/2 (direct+finetune): 2 cells, 2 submitted" in out

    records = {r.job_id: r for r in iter_records(results) if r.spec["mode"] != "pretrain"}
    assert set(records) == {finetune.job_id, direct.job_id}
    assert all(r.executor == "slurm" and r.status == "done" and r.threads == 2 for r in records.values())
    assert len({jobs[j]["cluster_job_id"].split("_")[0] for j in records}) == 1  # one job array
    log = (runs / finetune.job_id / "job.log").read_text()
    assert "checkpointed for requeue" in log
    assert "model selection resumed from" in log and "steps 20 scored" in log
    assert "REQUEUED" in _wait_for("sacct's record of the requeue", lambda: (
        s if (s := _states(cluster_id)) and s[-1] == "COMPLETED" else None), 60)
    assert _comparable(records[finetune.job_id]) == _comparable(finetune)
    assert _comparable(records[direct.job_id]) == _comparable(direct)


def test_a_two_task_job_of_the_real_workload_trains_in_lockstep(tmp_path: Path, capsys):
    """Pretrain, a direct and a fine-tune cell, each a 2-task SLURM job (gloo, one CPU each): both ranks hold the
    same weights at every checkpoint, each loads half of the global batch, each predicts half of the evaluation
    batches, and the record (written by rank 0 alone) holds what rank 0 scored; the direct record's metrics equal
    a 1-task job's, the fine-tune's the score of the weights it selected recomputed in one process."""
    results, runs = tmp_path / "results", tmp_path / "runs"
    args = ["run", "--suite", "demo", "--datasets", "Raccoon", "--mode", "direct,finetune", "--executor", "slurm",
            "--ntasks-per-node", "2", "--cpus-per-task", "1", "--time", "30", "--sweep", "ddp",
            "--results-root", str(results), "--runs-root", str(runs), "--no-report",
            "--set", "train.max_steps=4", "--set", "train.checkpoint_every=2", "--set", "train.warmup_steps=0"]
    assert main(args) == 0, capsys.readouterr().out[-2000:]
    records = {r.spec["mode"]: r for r in iter_records(results)}
    assert sorted(records) == ["direct", "finetune", "pretrain"]
    for mode, record in records.items():
        assert record.status == "done" and record.executor == "slurm" and record.threads == 1
        assert record.config["world_size"] == 2 and record.config["data"]["batch_size"] == 4
        run_dir = runs / record.job_id
        assert record.log_path == str(run_dir / "job.log")  # rank 0's log: rank 0 wrote the record
        assert "rank 0/2 joined gloo" in (run_dir / "job.log").read_text()
        assert "rank 1/2 joined gloo" in (run_dir / "job.rank1.log").read_text()
        assert "Raccoon: " in (run_dir / "job.log").read_text() and "(2 ranks)" in (run_dir / "job.log").read_text()
        if mode == "direct":
            continue
        checkpoints = sorted((run_dir / "checkpoints").glob("checkpoint_*.pt"))
        assert [int(p.stem.split("_")[1]) for p in checkpoints] == [2, 4], mode
        for path in checkpoints:
            state = load_checkpoint(path)
            assert state["rank_digests"] == [weights_digest(state["model"])] * 2, (mode, path.name)
            assert state["sampler"]["world_size"] == 2 and state["sampler"]["consumed"] == state["step"] * 2

    # the fine-tune's record: rank 0's score of the weights it selected, recomputed here in one process
    finetune = records["finetune"]
    progress = torch.load(runs / finetune.job_id / "selection.pt", weights_only=True)
    assert finetune.metrics["best_step"] == progress["step"] and sorted(progress["scored"]) == [2, 4]
    state = load_checkpoint(runs / finetune.job_id / "checkpoints" / "last.pt")
    cfg = load_config(state["config"])
    space = LabelSpace.from_state(state["label_space"])
    model = build_detector(cfg.model, space, load_weights=False)
    model.load_state_dict(progress["state"])
    source = load_source("demo", "Raccoon", finetune.split_policy, False, "names")
    assert space.fingerprint == finetune.label_space_fingerprint
    found = score(model, source, space, torch.device("cpu"))
    assert found["AP"] == pytest.approx(finetune.metrics["AP"], abs=1e-9)

    # the direct cell again as a 1-task job (the debug executor, in this process): the same metrics
    one = tmp_path / "one"
    assert main(["run", "--suite", "demo", "--datasets", "Raccoon", "--mode", "direct", "--executor", "debug",
                 "--checkpoint", str(runs / records["pretrain"].job_id / "checkpoints" / "last.pt"),
                 "--sweep", "one-task", "--results-root", str(one / "results"), "--runs-root", str(one / "runs"),
                 "--no-report"]) == 0
    [single] = list(iter_records(one / "results"))
    assert single.config["world_size"] == 1 and records["direct"].config["world_size"] == 2
    assert single.metrics["AP"] > 0 and single.metrics == pytest.approx(records["direct"].metrics, abs=1e-9)
    assert single.per_class_ap == pytest.approx(records["direct"].per_class_ap, abs=1e-9)
