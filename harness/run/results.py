"""The results store: one JSON file per result cell, written atomically.

Layout: ``<root>/<sweep id>/<job id>.json``, one :class:`ResultRecord` each (``status`` "done" or "failed").
A cell is *missing* when its file does not exist. Files are written to a temp file in the same folder,
fsync'ed, then ``os.replace``'d, so a reader never sees half a record.

``load_frame(root, sweep=None)`` returns a **long** pandas frame, one row per (cell, metric), columns:

============================  ==============================================================
sweep, job_id                 where the record lives
suite, dataset, mode, method  from the job spec (``dataset`` of a pretrain job is ``a+b+…``)
seed, shots, split_policy     from the job spec (``shots`` is <NA> outside fewshot)
status                        "done" | "failed"
metric                        metric name ("AP", "AP50", …); <NA> for a failed cell (one row)
class_name                    <NA> for dataset-level metrics; the class for per-class AP (metric "AP")
value                         float (NaN for a failed cell)
text_encoder, dataset_sha,    provenance, repeated on every row of the cell
label_space_fingerprint,
git_sha, host, wall_time_s
============================  ==============================================================
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from harness.job import JobSpec
from scaledet.errors import ConfigError
from scaledet.files import atomic_write_text
from scaledet.names import check_name

log = logging.getLogger(__name__)

STATUSES = ("done", "failed")
# fields that describe where/when/how a record was produced, not what it measured
PROVENANCE_FIELDS = ("packages", "git_sha", "host", "wall_time_s", "started_at", "finished_at", "log_path",
                     "executor", "slurm_job_id", "threads")
# fields added after records were first written: a record without them loads with their default
OPTIONAL_FIELDS = ("rehearsal", "threads", "fewshot_subset")
# keys a work function may return (see harness.workloads.base.WorkFn)
WORK_KEYS = ("metrics", "per_class_ap", "image_ids", "config", "dataset_version", "dataset_sha",
             "label_space_fingerprint", "text_encoder", "rehearsal", "fewshot_subset")
FRAME_COLUMNS = ["sweep", "job_id", "suite", "dataset", "mode", "method", "seed", "shots", "split_policy",
                 "status", "metric", "class_name", "value", "text_encoder", "dataset_sha",
                 "label_space_fingerprint", "git_sha", "host", "wall_time_s"]


@dataclass(frozen=True)
class ResultRecord:
    """Everything about one result cell. ``to_json``/``from_json`` round-trip exactly."""

    sweep: str
    job_id: str
    spec: dict[str, Any]
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    per_class_ap: dict[str, float] = field(default_factory=dict)
    image_ids: list[int] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    dataset_version: str | None = None
    dataset_sha: str | None = None
    label_space_fingerprint: str | None = None
    text_encoder: str | None = None
    split_policy: str | None = None
    packages: dict[str, str] = field(default_factory=dict)
    git_sha: str | None = None
    host: str | None = None
    threads: int | None = None  # torch intra-op threads the job ran with (SLURM: its --cpus-per-task)
    wall_time_s: float | None = None
    started_at: str | None = None
    finished_at: str | None = None
    executor: str | None = None
    slurm_job_id: str | None = None
    log_path: str | None = None
    error: str | None = None
    traceback: str | None = None
    rehearsal: dict[str, Any] | None = None  # set on a rehearsal's records: what was run at toy scale, stood in
    # a few-shot cell's subset: GLIP's file (path, sha256) or drawn, and the set its model was selected on
    fewshot_subset: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        check_name("status", self.status, STATUSES, f"result {self.job_id}")

    @property
    def job_spec(self) -> JobSpec:
        return JobSpec.from_dict(self.spec, where=f"result {self.job_id}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "<string>") -> ResultRecord:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{where}: not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}")
        return cls.from_dict(data, where)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "<dict>") -> ResultRecord:
        names = {f.name for f in fields(cls)}
        for key in data:
            check_name("result field", key, names, where)
        missing = sorted(names - set(data) - set(OPTIONAL_FIELDS))
        if missing:
            raise ConfigError(f"{where}: missing result field(s) {', '.join(missing)}")
        record = cls(**data)
        if record.job_id != record.job_spec.job_id:
            raise ConfigError(f"{where}: job_id {record.job_id} does not match its spec ({record.job_spec.job_id})")
        return record

    def measured(self) -> dict[str, Any]:
        """The record without provenance fields: what two executors must agree on."""
        data = asdict(self)
        for name in PROVENANCE_FIELDS:
            data.pop(name)
        return data


def result_path(root: Path, sweep: str, job_id: str) -> Path:
    return Path(root) / sweep / f"{job_id}.json"


def write_record(root: Path, record: ResultRecord) -> Path:
    path = result_path(root, record.sweep, record.job_id)
    atomic_write_text(path, record.to_json() + "\n")
    return path


def read_record(path: Path) -> ResultRecord:
    return ResultRecord.from_json(Path(path).read_text(), where=str(path))


def iter_records(root: Path, sweep: str | None = None) -> Iterable[ResultRecord]:
    """Every record under ``root`` (or one sweep), in path order; temp files are ignored."""
    folders = [Path(root) / sweep] if sweep else sorted(p for p in Path(root).glob("*") if p.is_dir())
    for folder in folders:
        for path in sorted(folder.glob("[!.]*.json")):
            yield read_record(path)


def cell_states(root: Path, sweep: str, specs: Sequence[JobSpec]) -> dict[str, str]:
    """job id → "done" | "failed" | "missing" for the planned cells."""
    states = {}
    for spec in specs:
        path = result_path(root, sweep, spec.job_id)
        states[spec.job_id] = _status_of(path) if path.exists() else "missing"
    return states


def _status_of(path: Path) -> str:
    return read_record(path).status


def cells_to_run(
    root: Path, sweep: str, specs: Sequence[JobSpec], *, overwrite: bool = False, retry_failed: bool = False
) -> list[JobSpec]:
    """The planned cells a re-run must (re)compute: missing ones, plus failed (``retry_failed``) or all
    (``overwrite``)."""
    if overwrite:
        return list(specs)
    states = cell_states(root, sweep, specs)
    wanted = {"missing", "failed"} if retry_failed else {"missing"}
    return [spec for spec in specs if states[spec.job_id] in wanted]


def _rows(record: ResultRecord) -> list[dict[str, Any]]:
    spec = record.spec
    base = {
        "sweep": record.sweep, "job_id": record.job_id, "suite": spec["suite"], "dataset": spec["dataset"],
        "mode": spec["mode"], "method": spec["method"], "seed": spec["seed"], "shots": spec["shots"],
        "split_policy": spec["split_policy"], "status": record.status, "text_encoder": record.text_encoder,
        "dataset_sha": record.dataset_sha, "label_space_fingerprint": record.label_space_fingerprint,
        "git_sha": record.git_sha, "host": record.host, "wall_time_s": record.wall_time_s,
    }
    if record.status == "failed":
        return [{**base, "metric": None, "class_name": None, "value": float("nan")}]
    rows = [{**base, "metric": name, "class_name": None, "value": float(value)}
            for name, value in record.metrics.items()]
    rows += [{**base, "metric": "AP", "class_name": name, "value": float(value)}
             for name, value in record.per_class_ap.items()]
    return rows


def load_frame(root: Path, sweep: str | None = None) -> pd.DataFrame:
    """All records under ``root`` (or one sweep) as a long frame; schema in the module docstring."""
    rows = [row for record in iter_records(root, sweep) for row in _rows(record)]
    frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
    frame["shots"] = frame["shots"].astype("Int64")
    frame["seed"] = frame["seed"].astype("Int64")
    frame["value"] = frame["value"].astype(float)
    return frame
