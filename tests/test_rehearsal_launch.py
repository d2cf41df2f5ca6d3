"""Several sweep files in one command run in waves, a cell several sweeps plan runs once, and `--rehearse` runs
the real plan under its own root and ends with its summary (toy workload, debug executor)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.cli import main
from harness.plan.resources import Resources
from harness.plan.sweepfile import load_sweep_file
from harness.run.orchestrate import Entry
from harness.run.rehearsal import MARKER, Rehearsal, cell_states, free_checkpoints
from harness.run.results import iter_records
from scaledet.files import CACHE_ENV


def _file(path: Path, name: str, modes: str, steps: int = 2, fail: bool = False) -> Path:
    overrides = f"{{toy.steps: {steps}{', toy.fail: true' if fail else ''}}}"
    path.write_text(f"sweep: {name}\nsuite: demo\ndatasets: [A, B]\nmodes: [{modes}]\nmethods: [scaledet]\n"
                    f"seeds: [3]\nworkload: toy\noverrides: {overrides}\n")
    return path


def _finished(root: Path, sweep: str) -> list[str]:
    return sorted(r.finished_at for r in iter_records(root, sweep))


def test_pretrain_stages_of_every_file_run_first_whatever_the_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    transfer = _file(tmp_path / "a_transfer.yaml", "transfer", "direct")
    pretrain = _file(tmp_path / "b_pretrain.yaml", "pretrain", "pretrain")
    assert main(["sweep", str(transfer), str(pretrain)]) == 0
    out = capsys.readouterr().out
    assert out.index("pretrain stage 1/1 (pretrain)") < out.index("transfer stage 1/1 (direct)")
    assert max(_finished(Path("results"), "pretrain")) <= min(_finished(Path("results"), "transfer"))


def test_a_cell_planned_by_two_sweeps_runs_once(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    first = _file(tmp_path / "one.yaml", "one", "direct")
    second = _file(tmp_path / "two.yaml", "two", "direct")
    assert main(["sweep", str(first), str(second)]) == 0
    assert "2 cells, 0 submitted, 0 already there, 2 run by another sweep of this command" in capsys.readouterr().out
    one, two = (list(iter_records(Path("results"), name)) for name in ("one", "two"))
    assert {r.job_id for r in one} == {r.job_id for r in two} and len(one) == 2
    assert {(r.job_id, r.finished_at) for r in one} == {(r.job_id, r.finished_at) for r in two}  # same run
    assert {r.sweep for r in two} == {"two"}


def test_rehearsal_runs_the_plan_under_its_own_root_and_ends_with_the_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    pretrain = _file(tmp_path / "p.yaml", "p", "pretrain")
    transfer = _file(tmp_path / "t.yaml", "t", "direct,finetune")
    assert main(["sweep", str(transfer), str(pretrain), "--rehearse"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "rehearsal: 5 cells, 5 done, 0 failed"  # 1 pretrain (A+B) + 2 x 2 transfer cells
    assert any("the real run: n/a GPU-hours" in line for line in lines)  # the toy workload has no estimate
    assert not Path("results").exists() and not Path("runs").exists()  # nothing written where real results go
    root = Path("rehearsal")
    assert "A rehearsal, not results" in (root / MARKER).read_text()
    records = [*iter_records(root / "results", "p"), *iter_records(root / "results", "t")]
    assert len(records) == 5 and all(r.rehearsal == {"toy_scale": True} for r in records)
    assert json.loads(next((root / "results" / "t").glob("*.json")).read_text())["rehearsal"] == {"toy_scale": True}
    # every cell is done: the checkpoints each job wrote are gone once counted
    line = next(line for line in lines if line.startswith("checkpoints: "))
    assert line.startswith("checkpoints: 5 files, 0.00 GB, the largest 0.00 GB (") and "GB freed" in line
    assert {p.name for p in (root / "runs").glob("*/*")} >= {"job.log"}
    assert not list((root / "runs").glob("**/*.pt"))


def test_checkpoints_a_retry_would_read_are_kept(tmp_path, monkeypatch):
    """A failed transfer cell keeps the checkpoint of the pretrain job it starts from and its own; the rest go."""
    monkeypatch.chdir(tmp_path)
    pretrain = _file(tmp_path / "p.yaml", "p", "pretrain")
    (pretrain_job,) = [spec.job_id for spec in load_sweep_file(pretrain).plan()]
    transfer = _file(tmp_path / "t.yaml", "t", "direct")  # a transfer file naming its pretrain job, as the paper's
    transfer.write_text(transfer.read_text().replace("{toy.steps: 2}", f"{{toy.steps: 2, pretrain_job: {pretrain_job}}}"))
    assert main(["sweep", str(transfer), str(pretrain)]) == 0  # a real run: every job leaves its checkpoint
    entries = [Entry(sweep, str(path), sweep.resources) for path in (pretrain, transfer)
               for sweep in [load_sweep_file(path)]]
    states = cell_states(entries, Path("results"))
    specs = [spec for entry in entries for spec in entry.specs]
    assert set(states.values()) == {"done"} and len(states) == 3
    failed = next(s for s in specs if s.mode == "direct")
    before = {p.parent.name: p.stat().st_size for p in Path("runs").glob("*/checkpoint.pt")}
    assert len(before) == 3
    kept = free_checkpoints(specs, {**states, failed.job_id: "failed"}, Path("runs"))
    left = {p.parent.name for p in Path("runs").glob("*/checkpoint.pt")}
    assert left == {failed.job_id, pretrain_job}
    assert (kept.files, kept.size) == (3, sum(before.values()))
    assert kept.freed == sum(size for job, size in before.items() if job not in left)
    assert kept.largest == max((size, job) for job, size in before.items())
    assert free_checkpoints(specs, states, Path("runs")).freed == sum(before[job] for job in left)
    assert not list(Path("runs").glob("*/checkpoint.pt"))


def test_a_failing_rehearsal_names_the_cell_and_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    bad = _file(tmp_path / "bad.yaml", "bad", "direct", fail=True)
    assert main(["sweep", str(bad), "--rehearse", "--rehearsal-root", "r2"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "rehearsal: 2 cells, 0 done, 2 failed"
    assert any("bad.yaml stage 1/1 (direct): 2 cells, 0 done, 2 failed; first error: direct A" in line
               and "ToyFailure" in line for line in lines)
    assert Path("r2/README.md").exists()


def test_rehearsal_resources_keep_at_most_two_ranks_and_no_gpus():
    asked = Resources(gpus_per_node=8, nodes=2, ntasks_per_node=8, cpus_per_task=8, mem="64G", time=1440)
    got = Rehearsal().resources(asked)
    assert (got.gpus_per_node, got.nodes, got.ntasks_per_node, got.cpus_per_task, got.mem) == (0, 1, 2, 1, None)
    assert got.time == 1440
    assert Rehearsal(ranks=1).resources(asked).ntasks_per_node == 1  # --ntasks-per-node given: kept
    assert Rehearsal().resources(Resources()).ntasks_per_node == 1


def test_a_transfer_file_whose_pretrain_checkpoint_does_not_exist_fails_naming_file_cell_and_checkpoint(
        tmp_path, monkeypatch, capsys):
    """A copy of a paper transfer sweep file rehearsed alone: the pretrain job it names never ran, so the stage
    that needs its checkpoint fails, naming the file, the cell and the missing checkpoint; exit 1."""
    monkeypatch.chdir(tmp_path)
    source = Path(__file__).resolve().parents[1] / "benchmarks" / "scaledet_sweeps" / "table8b_direct_L+C.yaml"
    copy = tmp_path / "my_transfer.yaml"
    copy.write_text(source.read_text())
    assert main(["sweep", str(copy), "--rehearse", "--executor", "debug", "--no-report"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "rehearsal: 13 cells, 0 done, 13 failed"
    stage = next(line for line in lines if line.strip().startswith(f"{copy} stage 1/1 (direct)"))
    pretrain_job = next(v for k, v in (line.split(": ", 1) for line in source.read_text().splitlines()
                                       if line.strip().startswith("pretrain_job:")))
    pretrain_job = pretrain_job.strip().strip("'\"")
    assert "13 cells, 0 done, 13 failed; first error: direct AerialMaritimeDrone (" in stage
    assert f"CheckpointError: pretrain job {pretrain_job} has no checkpoint at " in stage
    assert f"rehearsal/runs/{pretrain_job}/checkpoints/last.pt" in stage


def test_a_rehearsal_keeps_derived_caches_in_its_root(tmp_path, monkeypatch):
    for name in (CACHE_ENV, "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HARNESS_REHEARSAL_SCRATCH"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # prepare() sets them in this process: given back
    env = Rehearsal(tmp_path / "r", None).prepare([])
    # stand-in label embeddings and converted stand-in data never land in the user's cache
    assert env[CACHE_ENV] == os.environ[CACHE_ENV] == str(tmp_path / "r" / "scratch" / "cache")
    assert env["HF_HUB_OFFLINE"] == "1"
