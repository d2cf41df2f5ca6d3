"""The results store: atomic writes, strict records, load_frame schema, cells to (re)run, sweep files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.job import JobSpec
from harness.plan.grid import plan
from harness.plan.sweepfile import load_sweep_file
from harness.run import results
from harness.run.results import ResultRecord, cells_to_run, load_frame, read_record, write_record
from scaledet import files as atomic
from scaledet.errors import ConfigError


def _record(spec: JobSpec, status: str = "done", **values) -> ResultRecord:
    base = {"metrics": {"AP": 0.5, "AP50": 0.7}, "per_class_ap": {"cat": 0.4, "dog": 0.6}} if status == "done" \
        else {"error": "RuntimeError: boom", "traceback": "Traceback ...", "log_path": "runs/x/job.log"}
    return ResultRecord(sweep="s", job_id=spec.job_id, spec=spec.to_dict(), status=status, **{**base, **values})


SPECS = plan("demo", ["A", "B"], ["direct", "fewshot"], ["scaledet"], [3], shots=[1])


def test_record_round_trips_and_write_is_atomic(tmp_path, monkeypatch):
    record = _record(SPECS[0], image_ids=[3, 1, 2], git_sha="abc")
    path = write_record(tmp_path, record)
    assert path == tmp_path / "s" / f"{SPECS[0].job_id}.json"
    assert read_record(path) == record

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_record(tmp_path, _record(SPECS[0], metrics={"AP": 0.9}))
    monkeypatch.undo()
    assert read_record(path) == record  # the old file is intact
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left behind


def test_loading_is_strict_and_names_the_file(tmp_path):
    path = write_record(tmp_path, _record(SPECS[0]))
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "metrix": {}}))
    with pytest.raises(ConfigError, match=rf"{path}: unknown result field 'metrix' \(did you mean 'metrics'\?\)"):
        read_record(path)
    del data["host"]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=rf"{path}: missing result field\(s\) host"):
        read_record(path)
    path.write_text(json.dumps({**data, "host": None, "status": "fine"}))
    with pytest.raises(ConfigError, match="unknown status 'fine'"):
        read_record(path)
    path.write_text(json.dumps({**data, "host": None, "job_id": "000000000000"}))
    with pytest.raises(ConfigError, match="does not match its spec"):
        read_record(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=f"{path}: not valid JSON"):
        read_record(path)


def test_load_frame_is_long_with_documented_columns(tmp_path):
    write_record(tmp_path, _record(SPECS[0], text_encoder="minilm"))
    write_record(tmp_path, _record(SPECS[1], status="failed"))
    frame = load_frame(tmp_path, sweep="s")
    assert list(frame.columns) == results.FRAME_COLUMNS
    done = frame[frame.job_id == SPECS[0].job_id]
    assert sorted(zip(done.metric, done.class_name.fillna("-"), done.value)) == [
        ("AP", "-", 0.5), ("AP", "cat", 0.4), ("AP", "dog", 0.6), ("AP50", "-", 0.7)]
    assert set(done.text_encoder) == {"minilm"}
    failed = frame[frame.job_id == SPECS[1].job_id]
    assert len(failed) == 1 and failed.status.item() == "failed" and pd.isna(failed.value.item())
    assert frame.shots.dtype == "Int64"


def test_cells_to_run_fills_missing_and_switches(tmp_path):
    a, b, c = SPECS[0], SPECS[1], SPECS[2]
    write_record(tmp_path, _record(a))
    write_record(tmp_path, _record(b, status="failed"))
    assert cells_to_run(tmp_path, "s", [a, b, c]) == [c]
    assert cells_to_run(tmp_path, "s", [a, b, c], retry_failed=True) == [b, c]
    assert cells_to_run(tmp_path, "s", [a, b, c], overwrite=True) == [a, b, c]
    assert results.cell_states(tmp_path, "s", [a, b, c]) == {a.job_id: "done", b.job_id: "failed",
                                                             c.job_id: "missing"}


SWEEP_YAML = """\
suite: demo
datasets: [NorthAmericaMushrooms, Raccoon]
modes: [direct, finetune]
methods: [scaledet]
seeds: [3, 30]
resources:
  partition: debug
  ntasks_per_node: 2
"""


def test_sweep_file_loads_and_reports_lines(tmp_path: Path):
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP_YAML)
    sweep = load_sweep_file(path)
    assert sweep.resources.ntasks_per_node == 2
    pretrain, transfer = sweep.stages()  # no checkpoint given: the suite's upstream datasets are pretrained first
    assert [(s.mode, s.dataset) for s in pretrain] == [("pretrain", "Aquarium+Packages+Raccoon")]
    assert len(transfer) == 8 and {dict(s.overrides)["pretrain_job"] for s in transfer} == {pretrain[0].job_id}
    path.write_text(SWEEP_YAML.replace("Raccoon]", "Racoon]"))
    with pytest.raises(ConfigError, match=r"unknown dataset of suite 'demo' 'Racoon' \(did you mean 'Raccoon'\?\)"):
        load_sweep_file(path)
    path.write_text(SWEEP_YAML.replace("seeds: [3, 30]", "seed: [3, 30]"))
    with pytest.raises(ConfigError, match=rf"{path}:5: unknown sweep key 'seed' \(did you mean 'seeds'\?\)"):
        load_sweep_file(path)
    path.write_text(SWEEP_YAML.replace("seeds: [3, 30]", "seeds: [3, x]"))
    with pytest.raises(ConfigError, match=rf"{path}:5: seeds: expected a non-empty list of int"):
        load_sweep_file(path)
    path.write_text(SWEEP_YAML.replace("ntasks_per_node", "ntask_per_node"))
    with pytest.raises(ConfigError, match=rf"{path}:6: unknown resource 'ntask_per_node'"):
        load_sweep_file(path)
    path.write_text(SWEEP_YAML.replace("modes: [direct, finetune]", "modes: [direct, fintune]"))
    with pytest.raises(ConfigError, match="unknown mode 'fintune'"):
        load_sweep_file(path)
