"""Input adapter: the results store's long frame -> one row per result cell, as every table reads it.

A cell row has: suite, dataset, mode, method, upstream (the checkpoint's upstream datasets joined by
``+``, '' if unknown), checkpoint (``--pretrained`` name, ``--checkpoint`` path or ``--model``'s ``owner/name@revision``, '' if none), seed, shots (0 outside few-shot), status, ap (points x100, NaN if failed),
per_class (class -> AP points; NaN for a class with no ground truth in the evaluation split, stored as AP
``NO_GROUND_TRUTH`` = -1 by the pycocotools convention), split_policy, text_encoder, commit, config_hash, date.

``harness.run.results.load_frame`` supplies the metrics and most fields. Three things the report needs are not
in that frame, so they are read from each record (joined on ``job_id``): the checkpoint's upstream datasets
(the spec's ``upstream`` override, which the stage planner writes: ``harness.plan.stages.start_overrides``), the
prompts (``names`` or ``glip``), the date (``finished_at``) and a config hash
(SHA-256 of the record's effective config, canonical JSON, first 12 hex digits).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from harness.job import TRAINED_TRANSFER_MODES
from harness.run import results
from harness.workloads.hf.models import model_label
from scaledet.errors import DataError

log = logging.getLogger(__name__)

CELL_COLUMNS = [
    "suite", "dataset", "mode", "method", "upstream", "checkpoint", "seed", "shots", "status", "ap", "per_class",
    "split_policy", "prompts", "text_encoder", "commit", "config_hash", "date",
]  # fmt: skip
REPORT_MODES = ("direct", *TRAINED_TRANSFER_MODES)  # pretrain cells are upstream results, not ODinW transfer
CHECKPOINT_KEYS = ("pretrained", "checkpoint")  # `harness run --pretrained/--checkpoint` overrides
NO_GROUND_TRUTH = -1.0  # per-class AP of a class without ground truth (pycocotools; scaledet.evaluation)


def upstream_of(record: results.ResultRecord) -> str:
    """The checkpoint's upstream datasets (``LVIS+COCO``) from the spec's ``upstream`` override ('' if none)."""
    overrides = dict(tuple(pair) for pair in record.spec.get("overrides", ()))
    return str(overrides.get("upstream") or "")


def checkpoint_of(record: results.ResultRecord) -> str:
    """The named pretrained model or checkpoint path the transfer started from, or the external model and its
    revision (``owner/name@abc1234``); '' if none."""
    overrides = dict(tuple(pair) for pair in record.spec.get("overrides", ()))
    if overrides.get("hf_model"):
        return model_label(str(overrides["hf_model"]), str(overrides.get("hf_revision", "")))
    return next((str(overrides[key]) for key in CHECKPOINT_KEYS if overrides.get(key)), "")


def prompts_of(record: results.ResultRecord) -> str:
    """The class texts the cell used: ``names`` (the default) or ``glip`` (GLIP's prompt overrides)."""
    return str(record.job_spec.override("prompts") or "names")


def config_hash(config: Mapping[str, Any]) -> str:
    """First 12 hex digits of the SHA-256 of the config's canonical JSON."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def record_extras(record: results.ResultRecord) -> dict[str, str]:
    """What the report needs from a record beyond ``load_frame``'s columns."""
    return {"upstream": upstream_of(record), "checkpoint": checkpoint_of(record), "config_hash": config_hash(record.config),
            "prompts": prompts_of(record), "date": record.finished_at or "unknown"}  # fmt: skip


def _points(value: float, where: str) -> float:
    if math.isnan(value):
        return math.nan
    if not 0.0 <= value <= 1.0:
        raise DataError(f"{where}: AP = {value}, expected a fraction in [0, 1]")
    return 100.0 * value


def _class_points(value: float, where: str) -> float:
    """A per-class AP in points; NaN for a class with no ground truth (AP ``NO_GROUND_TRUTH``)."""
    return math.nan if value == NO_GROUND_TRUTH else _points(value, where)


def _text(value: Any) -> str:
    return "unknown" if value is None or pd.isna(value) else str(value)


def _cell(job: pd.DataFrame, extras: Mapping[str, str]) -> dict[str, Any]:
    first = job.iloc[0]
    where = f"result {first['sweep']}/{first['job_id']}"
    overall = job[job["metric"].eq("AP") & job["class_name"].isna()]["value"]
    classes = job[job["metric"].eq("AP") & job["class_name"].notna()]
    done = first["status"] == "done"
    if done and overall.empty:
        raise DataError(f"{where}: metrics has no 'AP', expected COCO AP as a fraction in [0, 1]")
    return {
        **{key: str(first[key]) for key in ("suite", "dataset", "mode", "method")},
        "upstream": extras["upstream"], "checkpoint": extras["checkpoint"], "seed": int(first["seed"]),
        "shots": 0 if pd.isna(first["shots"]) else int(first["shots"]), "status": str(first["status"]),
        "ap": _points(float(overall.iloc[0]), where) if done else math.nan,
        "per_class": {str(n): _class_points(float(v), where) for n, v in zip(classes["class_name"], classes["value"],
                                                                          strict=True)},
        "split_policy": _text(first["split_policy"]), "prompts": extras["prompts"],
        "text_encoder": _text(first["text_encoder"]),
        "commit": _text(first["git_sha"]), "config_hash": extras["config_hash"], "date": extras["date"],
    }  # fmt: skip


def cells_from_frame(frame: pd.DataFrame, extras: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """One row per result cell from ``load_frame``'s long frame; ``extras``: (sweep, job id) -> extras.

    A cell is its job id: one found in several sweeps (they share ``runs/<job id>/``) is counted once, from
    its newest record, never as extra seeds.
    """
    frame = frame[frame["mode"].isin(REPORT_MODES)]
    newest: dict[str, dict[str, Any]] = {}
    for (sweep, job_id), job in frame.groupby(["sweep", "job_id"], sort=True):
        row = _cell(job, extras[(sweep, job_id)])
        if job_id not in newest or str(row["date"]) > str(newest[job_id]["date"]):
            newest[job_id] = row
    cells = pd.DataFrame(list(newest.values()), columns=CELL_COLUMNS)
    order = ["suite", "mode", "method", "upstream", "dataset", "shots", "seed"]
    return cells.sort_values(order, kind="stable").reset_index(drop=True)


PRETRAIN_COLUMNS = ["suite", "method", "upstream", "backbone", "text_encoder", "recipe", "further", "seed", "status",
                    "ap", "dataset_ap", "date"]
PAPER_RECIPE = ("adam", "lsj")  # the optimizer and augmentation of the paper's runs (scaledet.config's defaults)


def recipe_of(config: dict[str, Any]) -> str:
    """'' for the paper's recipe (Adam, large-scale jitter), else e.g. 'sgd, standard aug' (Table 3's)."""
    optimizer = str(config.get("train", {}).get("optimizer", PAPER_RECIPE[0]))
    augmentation = str(config.get("data", {}).get("augmentation", PAPER_RECIPE[1]))
    return "" if (optimizer, augmentation) == PAPER_RECIPE else f"{optimizer}, {augmentation} aug"


def _planned_backbone(record: results.ResultRecord) -> str:
    """The backbone the cell was planned with (its ``model.backbone`` override; a rehearsal ran a toy one in its
    place), else the one its config ran; '' when the record says neither."""
    planned = record.job_spec.override("model.backbone")
    return str(planned or record.config.get("model", {}).get("backbone", ""))


def load_pretrain(root: Path, suite: str, sweep: str | None = None) -> pd.DataFrame:
    """One row per pretrain cell of ``suite`` (newest record of a job id): the datasets it trained on
    (``upstream``), its backbone and text encoder, its recipe ('' for the paper's), whether it went on from another
    pretrained model (``further``), its AP on each upstream dataset scored (``dataset_ap``: name ->
    points) and their mean (``ap``)."""
    newest: dict[str, dict[str, Any]] = {}
    for record in results.iter_records(Path(root), sweep):
        spec = record.spec
        if spec["mode"] != "pretrain" or spec["suite"] != suite:
            continue
        where = f"result {record.sweep}/{record.job_id}"
        done = record.status == "done"
        row = {"suite": suite, "method": spec["method"], "upstream": spec["dataset"],
               "backbone": _planned_backbone(record), "text_encoder": record.text_encoder or "",
               "recipe": recipe_of(record.config),
               "further": bool(record.config.get("work", {}).get("start_checkpoint")),  # Table 2's '*' runs
               "seed": int(spec["seed"]),
               "status": record.status, "date": record.finished_at or "unknown",
               "ap": _points(float(record.metrics["AP"]), where) if done else math.nan,
               "dataset_ap": {key.split("/", 1)[1]: _points(float(value), where)
                              for key, value in record.metrics.items() if key.startswith("AP/")} if done else {}}
        if record.job_id not in newest or row["date"] > newest[record.job_id]["date"]:
            newest[record.job_id] = row
    return pd.DataFrame(list(newest.values()), columns=PRETRAIN_COLUMNS)


def load_cells(root: Path, suite: str, sweep: str | None = None) -> pd.DataFrame:
    """The cells of ``suite`` in the results store at ``root`` (one sweep, or all)."""
    root = Path(root)
    if not (root / sweep if sweep else root).is_dir():
        raise DataError(f"{root / sweep if sweep else root}: results directory not found")
    extras = {(rec.sweep, rec.job_id): record_extras(rec) for rec in results.iter_records(root, sweep)}
    cells = cells_from_frame(results.load_frame(root, sweep=sweep), extras)
    log.debug("%d result cells under %s", len(cells), root)
    return cells[cells["suite"] == suite].reset_index(drop=True)
