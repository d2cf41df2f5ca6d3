"""On the real local SLURM cluster: job arrays, status, preemption + requeue, failure records, DDP."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch
from launch_fixtures import measured_records, toy_sweep
from slurm_fixtures import sacct_field, slurm_cluster  # noqa: F401  (fixture)

from harness.cli import main
from harness.job import JobSpec
from harness.plan.resources import Resources
from harness.run.launch import submit
from harness.run.results import iter_records, read_record, result_path
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


def _wait_for_step(ckpt: Path, step: int, limit: float = 120) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        if ckpt.exists():
            try:
                if torch.load(ckpt, weights_only=True)["step"] >= step:
                    return
            except (RuntimeError, EOFError):
                pass  # between temp write and replace on another process: retry
        time.sleep(0.3)
    raise AssertionError(f"{ckpt} did not reach step {step} within {limit}s")


@pytest.mark.slow  # SLURM holds a requeued job ~2 min before it runs again
def test_preempted_job_is_requeued_and_resumes_to_the_same_metrics(tmp_path):
    spec = JobSpec("demo", "Packages", "finetune", "scaledet", 3,
                   overrides={"toy.steps": 25, "toy.step_sleep": 0.3})
    roots = _roots(tmp_path, "slurm")
    # 60 min asked: submitit calls a signal before 48 min a preemption (a timeout when later)
    submission = submit([spec], workload=TOY, sweep="pre", executor="slurm", resources=Resources(time=60), **roots)
    job = submission.jobs[spec.job_id]
    run_dir = roots["runs_root"] / spec.job_id
    _wait_for_step(run_dir / "checkpoint.pt", 3)
    # what SLURM sends before a timeout/preemption (submitit's --signal=USR2@90): checkpoint + requeue
    subprocess.run(["scancel", "--signal=USR2", job.job_id], check=True, timeout=30)
    job.result()
    resumed_at = [int(s) for s in (run_dir / "resumes.txt").read_text().split()]
    assert len(resumed_at) == 1 and 3 <= resumed_at[0] < 25
    assert "Caught signal SIGUSR2" in job.stderr() and "this job is preempted" in job.stderr()
    assert "checkpointed for requeue" in (run_dir / "job.log").read_text()
    deadline = time.time() + 30  # the accounting database lags the job's end by a moment
    while (states := sacct_field(job.job_id, "State"))[-1] != "COMPLETED" and time.time() < deadline:
        time.sleep(1)
    assert "REQUEUED" in states and states[-1] == "COMPLETED"  # -D: every run of the job, requeues included
    record = read_record(result_path(roots["results_root"], "pre", spec.job_id))
    debug = _roots(tmp_path, "debug")
    submit([spec], workload=TOY, sweep="pre", executor="debug", **debug).wait()
    reference = read_record(result_path(debug["results_root"], "pre", spec.job_id))
    assert record.metrics == reference.metrics and record.measured() == reference.measured()


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


@pytest.mark.slow
def test_demo_sweep_with_the_detector_rehearses_as_arrays_on_slurm(tmp_path, capsys, monkeypatch):
    """The acceptance sweep with the real workload, rehearsed (toy scale: the same cells, stages and code paths):
    demo suite, 2 datasets x direct + finetune x 2 seeds after its pretrain job on 2 DDP ranks; every record done
    and marked as a rehearsal, one job array for the transfer cells, `harness status` shows sacct's COMPLETED."""
    monkeypatch.chdir(tmp_path)
    args = ["run", "--suite", "demo", "--seeds", "3,30", "--executor", "slurm", "--ntasks-per-node", "2",
            "--time", "20", "--sweep", "slurm-demo", "--no-report", "--rehearse"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "stage 1/2 (pretrain): 1 cells, 1 submitted" in out and "stage 2/2 (direct+finetune): 8 cells, 8 submitted" in out
    assert out.strip().splitlines()[-1] == "rehearsal: 9 cells, 9 done, 0 failed"
    root = tmp_path / "rehearsal"
    records = list(iter_records(root / "results", "slurm-demo"))
    assert len(records) == 9 and all(r.status == "done" and r.executor == "slurm" and r.rehearsal for r in records)
    assert all(r.slurm_job_id for r in records)
    pretrain = next(r for r in records if r.spec["mode"] == "pretrain")
    assert (root / "runs" / pretrain.job_id / "job.rank1.log").exists()  # DDP: the second rank ran and logged
    transfer = [r for r in records if r.spec["mode"] != "pretrain"]
    assert len({r.slurm_job_id.split("_")[0] for r in transfer}) == 1  # one job array for the 8 transfer cells
    status = _settled_status(root / "runs", "slurm-demo", capsys, completed=9, limit=90)
    assert "sweep slurm-demo: 9 cells: 9 done, 0 failed, 0 running, 0 pending" in status
    assert status.count("COMPLETED") == 9
