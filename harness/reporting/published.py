"""Published numbers (package data ``harness/data/published_results.yaml``) as report cells: ODinW-13 per
dataset and mode, and the upstream tables (Table 1, Table 8a); :func:`load_yaml` reads it and
``published_external.yaml`` (the leaderboard's)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import pandas as pd
import yaml

from harness.reporting.cells import CELL_COLUMNS

MODES = {"direct": "direct", "finetune": "finetune"}


@dataclass(frozen=True)
class Published:
    """Per-dataset published cells (same columns as the run cells) and means printed without them."""

    source: str
    cells: pd.DataFrame
    means: dict[tuple[str, str], float]  # (mode, method) -> printed mean, for rows with no per-dataset AP


PAPERS = "published_results.yaml"  # the paper's tables (and GLIP's, Detic's rows)
EXTERNAL = "published_external.yaml"  # mmdetection's zero-shot re-runs of other detectors on ODinW


# mmdetection's names of ODinW-35 configs where the registry's differ (published_external.yaml's ``odinw35``)
EXTERNAL_NAMES = {"AerialMaritimeDrone_large": "AerialMaritimeDrone", "EgoHands_generic": "EgoHands",
                  "OxfordPets_by_breed": "OxfordPets_by-breed", "OxfordPets_by_species": "OxfordPets_by-species",
                  "Raccoons": "Raccoon"}
EXTERNAL_BLOCKS = ("odinw13", "odinw35")


def load_external() -> dict[str, Any]:
    """``published_external.yaml`` with every block's datasets in the registry's names."""
    data = load_yaml(EXTERNAL)
    for block in EXTERNAL_BLOCKS:
        data[block]["datasets"] = [EXTERNAL_NAMES.get(name, name) for name in data[block]["datasets"]]
    return data


def load_yaml(name: str = PAPERS) -> dict[str, Any]:
    """Package data file ``harness/data/<name>`` of published numbers, parsed."""
    text = resources.files("harness").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def load_published(suite: str = "odinw13") -> Published:
    """The published rows for ``suite`` (only ODinW-13 has any; other suites get none)."""
    data = load_yaml()
    rows: list[dict[str, Any]] = []
    means: dict[tuple[str, str], float] = {}
    if suite == "odinw13":
        for mode in MODES:
            for method, entry in data[mode].items():
                if "ap" not in entry:
                    means[(mode, method)] = float(entry["mean"])
                    continue
                rows += [_cell(suite, mode, method, dataset, ap)
                         for dataset, ap in zip(data["dataset_order"], entry["ap"], strict=True)]  # fmt: skip
    cells = pd.DataFrame(rows, columns=[*CELL_COLUMNS, "published"])
    return Published(str(data["source"]), cells, means)


def printed_means(mode: str) -> dict[str, float]:
    """The mean each published row prints in its source (to check the recomputed means against)."""
    return {method: float(entry["mean"]) for method, entry in load_yaml()[mode].items()}


def _cell(suite: str, mode: str, method: str, dataset: str, ap: float) -> dict[str, Any]:
    return {"suite": suite, "dataset": dataset, "mode": mode, "method": method, "upstream": "",
            "checkpoint": "", "seed": 0, "shots": 0, "status": "done", "ap": float(ap), "per_class": {}, "split_policy": "published",
            "prompts": "published",
            "text_encoder": "published", "commit": "published", "config_hash": "published",
            "date": "published", "published": True}  # fmt: skip


@dataclass(frozen=True)
class UpstreamRow:
    """One published row of an upstream table: method, upstream datasets (``a+b``), AP x100 per upstream
    dataset (name -> value) and the mean printed in the paper."""

    method: str
    upstream: str
    ap: dict[str, float]
    mean: float


def upstream_rows(table: str) -> tuple[str, list[UpstreamRow]]:
    """(source, rows) of published upstream table ``table`` (``table1``, ``table8a``, ``table4``, ``tableA``). A
    row's ``ap`` is a list in ``upstream_order`` or, for a table with fewer columns (Table 4), a mapping."""
    data = load_yaml()
    order = data["upstream_order"]
    rows = [UpstreamRow(str(e["method"]), str(e["upstream"]), {str(k): float(v) for k, v in (
        e["ap"].items() if isinstance(e["ap"], dict) else zip(order, e["ap"], strict=True))}, float(e["mean"]))
        for e in data[table]]
    return str(data["upstream_source"]), rows
