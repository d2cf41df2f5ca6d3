"""Hardening, jobs: SIGKILL mid-write, 39 concurrent writers, out-of-memory and killed workers, re-runs after a
crash, disk full while checkpointing. Real processes and signals; the toy workload where a job is needed."""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from launch_fixtures import toy_sweep

from harness.job import JobSpec
from harness.run.launch import submit
from harness.run.results import (
    ResultRecord,
    cells_to_run,
    iter_records,
    load_frame,
    read_record,
    result_path,
    write_record,
)
from harness.workloads.base import Workload
from harness.workloads.methods import METHODS
from harness.workloads.toy import TOY
from scaledet import checkpoints
from scaledet.errors import CheckpointError

REPO = Path(__file__).resolve().parents[1]


def _spec(seed: int) -> JobSpec:
    return JobSpec("demo", "Packages", "direct", "scaledet", seed)


def _record(seed: int, ap: float, pad: int = 0) -> ResultRecord:
    spec = _spec(seed)
    return ResultRecord(sweep="s", job_id=spec.job_id, spec=spec.to_dict(), status="done", metrics={"AP": ap},
                        config={"pad": "x" * pad})


def _temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


WRITER = """
import sys
from pathlib import Path
from harness.run.results import ResultRecord, atomic_write_text, result_path
from harness.job import JobSpec
root, n = Path(sys.argv[1]), int(sys.argv[2])
spec = JobSpec("demo", "Packages", "direct", "scaledet", 0)
texts = [ResultRecord(sweep="s", job_id=spec.job_id, spec=spec.to_dict(), status="done", metrics={"AP": ap},
                      config={"pad": "x" * n}).to_json() + "\\n" for ap in (0.25, 0.75)]
(root / "ready").write_text("1")
i = 0
while True:  # the path write_record takes, with the (slow) serialisation done once
    atomic_write_text(result_path(root, "s", spec.job_id), texts[i % 2])
    i += 1
"""


def test_sigkill_while_writing_a_result_leaves_no_half_file(tmp_path):
    """A job killed (SIGKILL) in the middle of writing a 40 MB record: the result file is always a whole record."""
    write_record(tmp_path, _record(0, 0.5))  # an earlier good record of the cell
    folder = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed_mid_write = 0
    for _ in range(4):
        (tmp_path / "ready").unlink(missing_ok=True)
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(40_000_000)], env=env)
        try:
            deadline = time.monotonic() + 60
            while not (tmp_path / "ready").exists() and time.monotonic() < deadline and child.poll() is None:
                time.sleep(0.02)
            before = set(_temp_files(folder))
            while time.monotonic() < deadline and child.poll() is None:
                if set(_temp_files(folder)) - before:  # a write is under way: kill the process now
                    break
            os.kill(child.pid, signal.SIGKILL)
        finally:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
        killed_mid_write += bool(set(_temp_files(folder)) - before)
        for path in folder.glob("*.json"):  # every result file parses, and is one of the records written
            assert read_record(path).metrics["AP"] in (0.5, 0.25, 0.75)
        if killed_mid_write >= 2:
            break
    assert killed_mid_write >= 1, "no kill landed while a temp file existed"
    assert _temp_files(folder)  # the killed writes left temp files beside the record ...
    assert [r.job_id for r in iter_records(tmp_path)] == [_spec(0).job_id]  # ... which readers ignore
    frame = load_frame(tmp_path, sweep="s")
    assert len(frame) == 1 and frame.metric.item() == "AP"


def _write_at_once(root: str, seed: int, barrier) -> None:
    barrier.wait()
    write_record(Path(root), _record(seed, seed / 100, pad=200_000))


def test_39_concurrent_writers_into_one_sweep_lose_nothing(tmp_path):
    """39 processes (as 39 array tasks) write their results into the same sweep folder at the same moment."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(39)
    workers = [ctx.Process(target=_write_at_once, args=(str(tmp_path), seed, barrier)) for seed in range(39)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0] * 39
    files = sorted((tmp_path / "s").iterdir())
    assert len(files) == 39 and all(p.suffix == ".json" for p in files)  # no temp file left
    records = {r.job_id: r for r in iter_records(tmp_path, "s")}
    assert {r.metrics["AP"] for r in records.values()} == {seed / 100 for seed in range(39)}
    assert set(records) == {_spec(seed).job_id for seed in range(39)}


def _out_of_memory(spec: JobSpec, run_dir: Path) -> dict:
    blocks = [bytearray(1 << 20)]  # a worker that asks for far more memory than the node has
    raise MemoryError(f"simulated: cannot allocate 64 GiB after {len(blocks)} MiB")


def test_out_of_memory_in_a_job_becomes_a_failure_record(tmp_path):
    oom = Workload("hardening-oom", work={"direct": _out_of_memory}, methods=METHODS)
    spec = toy_sweep()[0]
    states = submit([spec], sweep="s", results_root=tmp_path / "results", runs_root=tmp_path / "runs",
                    workload=oom).wait()
    assert states == {spec.job_id: "failed"}
    record = read_record(result_path(tmp_path / "results", "s", spec.job_id))
    assert record.status == "failed" and record.metrics == {}
    assert record.error == "MemoryError: simulated: cannot allocate 64 GiB after 1 MiB"
    assert "raise MemoryError" in record.traceback and record.traceback.startswith("Traceback")
    assert record.log_path == str((tmp_path / "runs" / spec.job_id / "job.log").resolve())
    assert "MemoryError" in Path(record.log_path).read_text()


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow  # a real local-executor job: ~25 s on 2 shared cores
def test_a_worker_killed_by_a_signal_gets_a_failure_record(tmp_path):
    """``local`` executor: the job's worker process is SIGKILLed mid-training (as the out-of-memory killer
    does), so its runner cannot write anything; ``Submission.wait`` sees submitit's failure and records it."""
    spec = JobSpec("demo", "Packages", "direct", "scaledet", 3, overrides={"toy.steps": 3000, "toy.step_sleep": 0.02})
    submission = submit([spec], workload=TOY, sweep="s", results_root=tmp_path / "results", runs_root=tmp_path / "runs",
                        executor="local")
    job = submission.jobs[spec.job_id]
    log_file = tmp_path / "runs" / spec.job_id / "job.log"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and "step 2/3000" not in (log_file.read_text() if log_file.exists() else ""):
        time.sleep(0.1)
    workers = _children(job._process.pid)  # submitit's controller runs the task as its child process
    assert len(workers) == 1, workers
    os.kill(workers[0], signal.SIGKILL)
    assert submission.wait() == {spec.job_id: "failed"}
    record = read_record(result_path(tmp_path / "results", "s", spec.job_id))
    assert record.status == "failed" and record.executor == "local" and record.slurm_job_id == str(job.job_id)
    assert record.error.startswith("JobLost: the job process ended without writing a result (killed by a signal")
    assert record.traceback  # submitit's account, with the tail of the job's stderr
    assert record.log_path == str(log_file.resolve()) and "step 2/3000" in log_file.read_text()
    # the failure is an ordinary failed cell: --retry-failed runs it again
    assert cells_to_run(tmp_path / "results", "s", [spec]) == []
    assert cells_to_run(tmp_path / "results", "s", [spec], retry_failed=True) == [spec]


def test_rerun_after_a_crash_fills_only_the_missing_cells(tmp_path):
    specs = toy_sweep(steps=2)
    bad = JobSpec(**{**specs[0].__dict__, "seed": 7, "overrides": (("toy.fail", True), ("toy.steps", 2))})
    roots = {"results_root": tmp_path / "results", "runs_root": tmp_path / "runs"}
    submit([*specs, bad], workload=TOY, sweep="s", executor="debug", **roots).wait()
    # the crash: two cells lost their results (the sweep stopped before they were written), one
    # half-written temp file is left in the sweep folder
    lost = [specs[1], specs[3]]
    for spec in lost:
        result_path(tmp_path / "results", "s", spec.job_id).unlink()
    (tmp_path / "results" / "s" / f".{specs[1].job_id}.json.x1y2z3.tmp").write_text('{"sweep": "s", "jo')
    done_before = {s.job_id: read_record(result_path(tmp_path / "results", "s", s.job_id)).finished_at
                   for s in specs if s not in lost}
    again = submit([*specs, bad], workload=TOY, sweep="s", executor="debug", **roots)
    assert sorted(again.jobs) == sorted(s.job_id for s in lost)
    assert sorted(again.skipped) == sorted([bad.job_id] + list(done_before))
    assert set(again.wait().values()) == {"done"}
    for job_id, finished in done_before.items():  # the done cells were not touched
        assert read_record(result_path(tmp_path / "results", "s", job_id)).finished_at == finished
    assert submit([*specs, bad], workload=TOY, sweep="s", executor="debug", **roots).jobs == {}
    retry = submit([*specs, bad], workload=TOY, sweep="s", executor="debug", retry_failed=True, **roots)
    assert list(retry.jobs) == [bad.job_id]


def test_cells_to_run_with_done_missing_and_failed_cells(tmp_path):
    specs = [_spec(seed) for seed in range(4)]
    write_record(tmp_path, _record(0, 0.5))
    write_record(tmp_path, _record(1, 0.5))
    failed = ResultRecord(sweep="s", job_id=specs[3].job_id, spec=specs[3].to_dict(), status="failed",
                          error="MemoryError: x", traceback="...", log_path="runs/x/job.log")
    write_record(tmp_path, failed)
    assert cells_to_run(tmp_path, "s", specs) == [specs[2]]
    assert cells_to_run(tmp_path, "s", specs, retry_failed=True) == [specs[2], specs[3]]


def _state(step: int) -> dict:
    torch.manual_seed(step)
    return {"step": step, "model": torch.nn.Linear(4, 2).state_dict(), "label_space": {}, "config": {}}


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "checkpoints"
    checkpoints.save_checkpoint(_state(1), out)
    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):  # writes part of the file, then the disk is full
        with open(f, "wb") as stream:
            stream.write(b"PK\x03\x04" + b"\x00" * 4096)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError) as caught:
        checkpoints.save_checkpoint(_state(2), out)
    monkeypatch.setattr(torch, "save", real_save)
    message = str(caught.value)
    assert f"cannot write checkpoint {out / 'checkpoint_0000002.pt'} (step 2): No space left on device" in message
    assert f"{out / 'last.pt'} -> checkpoint_0000001.pt is kept" in message
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint_0000001.pt", "last.pt"]  # no temp file left
    state = checkpoints.load_checkpoint(out)
    assert state["step"] == 1 and os.readlink(out / "last.pt") == "checkpoint_0000001.pt"
    assert all(torch.equal(state["model"][k], v) for k, v in _state(1)["model"].items())
    # disk full before any checkpoint exists: said as such
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError, match="there is no earlier checkpoint"):
        checkpoints.save_checkpoint(_state(1), tmp_path / "fresh")
    assert list((tmp_path / "fresh").iterdir()) == []


def test_disk_full_during_training_stops_with_the_last_good_checkpoint(tmp_path, monkeypatch):
    from engine_fixtures import packages, tiny_config

    from scaledet.engine import train

    data, space = packages(tmp_path)
    real_save = torch.save

    def full_at_step_2(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("step") == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_at_step_2)
    with pytest.raises(CheckpointError, match=r"checkpoint_0000002\.pt \(step 2\): No space left on device"):
        train(tiny_config(2, 1), [data], space, tmp_path / "run", device="cpu")
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint_0000001.pt", "last.pt"]
    resumed = train(tiny_config(2, 1), [data], space, tmp_path / "run", device="cpu")  # space freed: resume
    assert resumed.step == 2 and len(resumed.history) == 1


def test_concurrent_atomic_torch_saves_of_one_path_all_land(tmp_path):
    """Several jobs may write one shared file at once (the label-embedding cache): each write has its own temp
    file, so none fails and the file is always one whole write (a shared temp name lost the race in CI)."""
    import threading

    import torch

    from scaledet.files import atomic_torch_save

    path, errors = tmp_path / "cache" / "emb.pt", []

    def writer(value: float) -> None:
        try:
            for _ in range(150):
                atomic_torch_save({"embeddings": torch.full((64, 16), value)}, path)
        except Exception as error:  # noqa: BLE001 (collected, asserted below)
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(float(v),)) for v in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    saved = torch.load(path, weights_only=True)["embeddings"]
    assert saved.unique().numel() == 1 and _temp_files(path.parent) == []
