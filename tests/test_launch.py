"""Launching without SLURM: debug vs local executors, failure records, retry, exact resume, resources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from launch_fixtures import measured_records, toy_sweep

from harness.cli import main
from harness.job import JobSpec
from harness.plan.resources import Resources
from harness.run.launch import submit
from harness.run.manifest import manifest_path
from harness.run.results import read_record, result_path
from harness.workloads import get_workload
from harness.workloads.base import Workload
from harness.workloads.methods import METHODS
from harness.workloads.toy import TOY, train_toy
from scaledet.errors import ConfigError


def test_debug_and_local_executors_give_the_same_results(tmp_path):
    specs = toy_sweep()
    for executor in ("debug", "local"):
        submission = submit(specs, workload=TOY, sweep="s", results_root=tmp_path / executor / "results",
                            runs_root=tmp_path / executor / "runs", executor=executor)
        assert set(submission.wait().values()) == {"done"}
    debug, local = (measured_records(tmp_path / e / "results", "s") for e in ("debug", "local"))
    assert set(debug) == {s.job_id for s in specs}
    assert debug == local
    record = read_record(result_path(tmp_path / "local" / "results", "s", specs[0].job_id))
    assert record.executor == "local" and record.host and record.packages["torch"] and record.wall_time_s >= 0
    assert record.metrics["eval_loss"] > 0 and record.config["steps"] == 4
    manifest = json.loads(manifest_path(tmp_path / "local" / "runs", "s").read_text())
    assert set(manifest["jobs"]) == {s.job_id for s in specs}
    assert (tmp_path / "local" / "runs" / specs[0].job_id / "job.log").read_text().count("step 4/4") == 1


def test_failure_record_and_retry_failed_reruns_only_it(tmp_path):
    specs = toy_sweep(steps=2)
    bad = JobSpec(**{**specs[0].__dict__, "seed": 7, "overrides": (("toy.fail", True), ("toy.steps", 2))})
    roots = {"results_root": tmp_path / "results", "runs_root": tmp_path / "runs"}
    states = submit([*specs, bad], workload=TOY, sweep="s", executor="debug", **roots).wait()
    assert states[bad.job_id] == "failed" and sum(s == "done" for s in states.values()) == len(specs)
    record = read_record(result_path(tmp_path / "results", "s", bad.job_id))
    assert record.status == "failed" and record.metrics == {}
    assert record.error.startswith("ToyFailure: toy job") and "raise ToyFailure" in record.traceback
    assert record.log_path.endswith(f"{bad.job_id}/job.log")
    assert submit([*specs, bad], workload=TOY, sweep="s", executor="debug", **roots).jobs == {}  # nothing missing
    again = submit([*specs, bad], workload=TOY, sweep="s", executor="debug", retry_failed=True, **roots)
    assert list(again.jobs) == [bad.job_id]


def test_toy_training_resumes_exactly(tmp_path):
    full = JobSpec("demo", "Packages", "finetune", "scaledet", 3, overrides={"toy.steps": 12})
    first = JobSpec("demo", "Packages", "finetune", "scaledet", 3, overrides={"toy.steps": 5})
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    uninterrupted = train_toy(full, tmp_path / "a")
    train_toy(first, tmp_path / "b")  # "preempted" after 5 steps: its checkpoint stays in run_dir
    resumed = train_toy(full, tmp_path / "b")
    assert (tmp_path / "b" / "resumes.txt").read_text() == "5\n"
    assert resumed == uninterrupted  # bitwise-equal metrics
    assert (tmp_path / "a" / "params.rank0.json").read_text() == (tmp_path / "b" / "params.rank0.json").read_text()


def test_resources_and_registry_reject_misspellings():
    assert Resources.from_dict({"partition": "gpu", "extra": {"constraint": "a100"}}).extra == (("constraint", "a100"),)
    with pytest.raises(ConfigError, match=r"unknown resource 'gpus_per_nod' \(did you mean 'gpus_per_node'\?\)"):
        Resources.from_dict({"gpus_per_nod": 8})
    with pytest.raises(ConfigError, match=r"unknown workload 'scaledett' \(did you mean 'scaledet'\?\).*valid: .*toy"):
        get_workload("scaledett")
    assert get_workload("scaledet").work_for("fewshot").__name__ == "finetune"  # the detector's work functions
    with pytest.raises(ConfigError, match="unknown mode of workload 'unit-test' 'finetune'"):
        _bogus_output_workload().work_for("finetune")
    with pytest.raises(ConfigError, match="unknown method of workload 'toy' 'scaledt'"):
        get_workload("toy").method("scaledt")


def _bogus_output_workload() -> Workload:
    return Workload("unit-test", work={"direct": lambda spec, run_dir: {"metrics": {}, "bogus": 1}},
                    methods=METHODS)


def test_work_output_is_checked(tmp_path):
    spec = toy_sweep()[0]
    states = submit([spec], sweep="s", results_root=tmp_path / "r", runs_root=tmp_path / "runs",
                    workload=_bogus_output_workload()).wait()
    assert states == {spec.job_id: "failed"}
    record = read_record(result_path(tmp_path / "r", "s", spec.job_id))
    assert "unknown work output key 'bogus'" in record.error


def test_cli_run_then_status(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["run", "--suite", "demo", "--datasets", "A,B", "--mode", "direct", "--seeds", "3", "--workload", "toy",
            "--set", "toy.steps=2", "--sweep", "cli"]
    assert main(args) == 0
    assert main(args) == 0
    assert "stage 1/1 (direct): 2 cells, 0 submitted, 2 already there" in capsys.readouterr().out
    assert main(["status", "--sweep", "cli"]) == 0
    out = capsys.readouterr().out
    assert "sweep cli: 2 cells: 2 done, 0 failed, 0 running, 0 pending" in out
    assert main(["cancel", "--sweep", "cli"]) == 0
    assert "nothing to cancel" in capsys.readouterr().out
    assert Path("results/cli").is_dir()


def test_a_job_runs_the_threads_slurm_allotted_and_records_them(tmp_path, monkeypatch):
    specs = toy_sweep(steps=2)[:1]
    roots = {"results_root": tmp_path / "results", "runs_root": tmp_path / "runs"}
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")  # what slurmd exports for --cpus-per-task 1
        assert set(submit(specs, workload=TOY, sweep="s", executor="debug", **roots).wait().values()) == {"done"}
        assert read_record(result_path(roots["results_root"], "s", specs[0].job_id)).threads == 1
        assert torch.get_num_threads() == 2  # the caller's setting is given back
        monkeypatch.delenv("SLURM_CPUS_PER_TASK")
        submit(specs, workload=TOY, sweep="t", executor="debug", **roots).wait()
        assert read_record(result_path(roots["results_root"], "t", specs[0].job_id)).threads == 2
    finally:
        torch.set_num_threads(before)
