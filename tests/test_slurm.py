"""On the real local SLURM cluster, with the toy workload: job arrays, status, failure records, DDP. The real
workload on SLURM (preemption and requeue, 2-task jobs, executor parity): tests/test_slurm_workload.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from launch_fixtures import measured_records, toy_sweep
from slurm_fixtures import slurm_cluster  # noqa: F401  (fixture)

from harness.cli import main
from harness.job import JobSpec
from harness.plan.resources import Resources
from harness.run.launch import submit
from harness.run.results import read_record, result_path
from harness.workloads.toy import TOY

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]
RES = Resources(time=10, cpus_per_task=1)


def _roots(tmp_path: Path, name: str) -> dict[str, Path]:
    return {"results_root": tmp_path / name / "results", "runs_root": tmp_path / name / "runs"}


def test_sweep_runs_as_job_array_and_status_shows_done(tmp_path, capsys):
    specs = toy_sweep(steps=3)
    roots = _roots(tmp_path, "slurm")
    submission = submit(specs, workload=TOY, sweep="acc", executor="slurm", resources=RES, **roots)
    cluster_ids = [job.job_id for job in submission.jobs.values()]
    array = {cid.split("_")[0] for cid in cluster_ids}
    assert len(array) == 1 and sorted(cid.split("_")[1] for cid in cluster_ids) == [str(i) for i in range(8)]
    assert set(submission.wait().values()) == {"done"}
    assert all(result_path(roots["results_root"], "acc", s.job_id).exists() for s in specs)
    out = _settled_status(roots["runs_root"], "acc", capsys, completed=8)
    assert "sweep acc: 8 cells: 8 done, 0 failed, 0 running, 0 pending" in out
    assert out.count("COMPLETED") == 8  # accurate states from sacct (accounting on)
    # each job ran as many torch threads as SLURM allotted it CPUs (not every core of the node)
    assert {read_record(result_path(roots["results_root"], "acc", s.job_id)).threads for s in specs} == {
        RES.cpus_per_task}
    # same results as the in-process executor, bar provenance
    debug = _roots(tmp_path, "debug")
    submit(specs, workload=TOY, sweep="acc", executor="debug", **debug).wait()
    assert measured_records(roots["results_root"], "acc") == measured_records(debug["results_root"], "acc")


def _settled_status(runs_root: Path, sweep: str, capsys, completed: int, limit: float = 60) -> str:
    """`harness status` output once sacct has caught up: a task's record is written just before its process
    exits, and sacct says RUNNING until slurmd reports the exit (a second or so, longer under load)."""
    deadline = time.time() + limit
    while True:
        assert main(["status", "--sweep", sweep, "--runs-root", str(runs_root)]) == 0
        out = capsys.readouterr().out
        if out.count("COMPLETED") >= completed or time.time() > deadline:
            return out
        time.sleep(1)


def test_failing_job_writes_a_record_and_retry_reruns_only_it(tmp_path):
    specs = toy_sweep(steps=2)[:2]
    bad = JobSpec("demo", "Packages", "direct", "scaledet", 99, overrides={"toy.fail": True})
    roots = _roots(tmp_path, "slurm")
    states = submit([*specs, bad], workload=TOY, sweep="f", executor="slurm", resources=RES, **roots).wait()
    assert states == {specs[0].job_id: "done", specs[1].job_id: "done", bad.job_id: "failed"}
    record = read_record(result_path(roots["results_root"], "f", bad.job_id))
    assert record.status == "failed" and "ToyFailure" in record.error and record.slurm_job_id
    rerun = submit([*specs, bad], workload=TOY, sweep="f", executor="slurm", resources=RES, retry_failed=True, **roots)
    assert list(rerun.jobs) == [bad.job_id]
    assert rerun.wait() == {bad.job_id: "failed"}


def test_two_ddp_ranks_train_in_lockstep(tmp_path):
    spec = JobSpec("demo", "Packages", "pretrain", "scaledet", 3, overrides={"toy.steps": 6})
    roots = _roots(tmp_path, "slurm")
    resources = Resources(time=10, cpus_per_task=1, ntasks_per_node=2)
    states = submit([spec], workload=TOY, sweep="ddp", executor="slurm", resources=resources, **roots).wait()
    assert states == {spec.job_id: "done"}
    run_dir = roots["runs_root"] / spec.job_id
    ranks = [json.loads((run_dir / f"params.rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and ranks[0]["digest"] == ranks[1]["digest"]
    # both ranks' batches counted: the averaged-gradient model differs from a single-process run
    single = _roots(tmp_path, "single")
    submit([spec], workload=TOY, sweep="ddp", executor="debug", **single).wait()
    alone = json.loads((single["runs_root"] / spec.job_id / "params.rank0.json").read_text())
    assert alone["world"] == 1 and alone["digest"] != ranks[0]["digest"]
    assert read_record(result_path(roots["results_root"], "ddp", spec.job_id)).config["world_size"] == 2
