"""The leaderboard: zero-shot (direct) transfer of every measured model (ScaleDet checkpoints, external
detectors) beside the published rows, each with its protocol, a mean recomputed over the columns shown, a
zero-shot mean over the cells the model did not train on, and the mean its source printed (flagged when it
disagrees with its own columns).

Published rows come from ``harness/data/published_results.yaml`` (direct transfer) and
``harness/data/published_external.yaml`` (mmdetection's zero-shot re-runs), whichever lists every dataset of the
report (the smallest such block). Leakage marks come from ``harness.catalog.leakage`` (the training data of
external checkpoints as their adapter families declare it).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from harness.catalog.leakage import (
    CLEAN,
    LEAK,
    UNKNOWN,
    Declared,
    Verdict,
    declared_for,
    upstream_declared,
    verdict,
)
from harness.reporting import averages as avg
from harness.reporting.model import Cell, Marked, Missing, Note, Row, Stat, Table, row_label
from harness.reporting.published import EXTERNAL_BLOCKS, PAPERS, load_external, load_yaml
from harness.reporting.tables import ReportInput, method_groups
from harness.workloads.hf import EXTERNAL as EXTERNAL_MODELS
from harness.workloads.hf.families import declared_training

ROUNDING = 0.1  # a printed mean of values printed to 0.1 may differ from their recomputed mean by this much
MARKS = {LEAK: "†", UNKNOWN: "?"}


@dataclass
class Entry:
    """One leaderboard row before it becomes cells; ``verdicts``: its leakage per dataset of the report."""

    label: str
    published: bool
    values: dict[str, Stat]  # dataset -> AP x100
    declared: Declared | None
    protocol: str
    printed_mean: float | None = None
    own_mean: float | None = None  # a published row: the mean of all its source's columns
    method: str = ""
    verdicts: dict[str, Verdict] = field(default_factory=dict)


def _measured(inp: ReportInput) -> list[Entry]:
    direct = inp.cells[inp.cells["mode"] == "direct"]
    entries = []
    for label, method, upstream, group in method_groups(direct):
        done = group[group["status"] == "done"]
        values = {d: avg.stat(list(g["ap"])) for d, g in done.groupby("dataset") if d in inp.datasets}
        checkpoint = str(group["checkpoint"].iloc[0])
        if method == EXTERNAL_MODELS.name:
            label = f"{checkpoint} (transformers)"
            declared = declared_training(checkpoint.rsplit("@", 1)[0])
        else:
            declared = upstream_declared(upstream.split("+")) if upstream else None
        policies = ", ".join(sorted(set(group["split_policy"])))
        prompts = ", ".join(sorted(set(group["prompts"])))
        entries.append(Entry(label, False, values, declared, f"measured: split {policies}, prompts {prompts}",
                             method=method))
    return entries


def _published_entry(method: str, aps: Mapping[str, float], printed: float, protocol: str) -> Entry:
    """A published row: its per-dataset AP (none for a source that prints only a mean) and printed mean."""
    return Entry(row_label(method, "", True), True, {d: Stat(float(v), 0.0, 1) for d, v in aps.items()},
                 declared_for(method), f"published: {protocol}", printed,
                 statistics.fmean(aps.values()) if aps else None, method)


def _published(datasets: tuple[str, ...]) -> list[Entry]:
    entries = []
    paper = load_yaml(PAPERS)
    if set(datasets) <= set(paper["dataset_order"]):
        for method, row in paper["direct"].items():
            aps = dict(zip(paper["dataset_order"], row["ap"], strict=True)) if "ap" in row else {}
            entries.append(_published_entry(method, aps, float(row["mean"]), paper["source"]))
    external = load_external()
    blocks = [b for b in EXTERNAL_BLOCKS if set(datasets) <= set(external[b]["datasets"])]
    for block in blocks[:1]:
        rows = {method: row for method, row in external[block].items() if method != "datasets"}
        for method, row in rows.items():
            aps = dict(zip(external[block]["datasets"], row["ap"], strict=True))
            entries.append(_published_entry(method, aps, float(row["printed_mean"]),
                                            f"{external['source']}; {external['protocol']}"))
    return entries


def _cells(entry: Entry, datasets: tuple[str, ...]) -> tuple[Cell, ...]:
    if entry.published and not entry.values:  # a source that prints only a mean: marked if it covers a leak
        printed = _printed(entry)
        if isinstance(printed, Stat) and any(v.status == LEAK for v in entry.verdicts.values()):
            printed = Marked(printed.mean, printed.std, printed.n, MARKS[LEAK])
        return (*[Missing("–")] * (len(datasets) + 2), printed, Note(entry.protocol))
    cells: list[Cell] = []
    for dataset in datasets:
        value = entry.values.get(dataset)
        mark = MARKS.get(entry.verdicts[dataset].status, "")
        cells.append(Missing("missing") if value is None else
                     Marked(value.mean, value.std, value.n, mark) if mark else value)
    shown = [entry.values[d].mean for d in datasets if d in entry.values]
    clean = [entry.values[d].mean for d in datasets if d in entry.values and entry.verdicts[d].status == CLEAN]
    complete = len(shown) == len(datasets)
    mean = Stat(statistics.fmean(shown), 0.0, 1) if complete else Missing(f"missing ({len(shown)}/{len(datasets)})")
    if not complete:
        zero_shot: Cell = Missing("missing")
    elif not clean:
        zero_shot = Missing("none (every column marked)")
    else:
        zero_shot = (Stat(statistics.fmean(clean), 0.0, 1) if len(clean) == len(datasets)
                     else Marked(statistics.fmean(clean), 0.0, 1, f" ({len(clean)}/{len(datasets)})"))
    return (*cells, mean, zero_shot, _printed(entry), Note(entry.protocol))


def _mark_notes(entry: Entry, datasets: Sequence[str]) -> list[str]:
    """One footnote per mark of ``entry``: each reason with the columns it marks."""
    notes = []
    for status, mark in MARKS.items():
        by_reason: dict[str, list[str]] = {}
        for dataset in datasets:
            if entry.verdicts[dataset].status == status:
                by_reason.setdefault(entry.verdicts[dataset].reason, []).append(dataset)
        if by_reason:
            parts = [f"{reason}: {'every column' if len(names) == len(datasets) else ', '.join(names)}"
                     for reason, names in by_reason.items()]
            notes.append(f"{mark} {entry.label}: {'; '.join(parts)}.")
    return notes


def _printed(entry: Entry) -> Cell:
    if entry.printed_mean is None:
        return Missing("–")
    if entry.own_mean is not None and abs(entry.printed_mean - entry.own_mean) > ROUNDING:
        return Marked(entry.printed_mean, 0.0, 1, f" ≠ {entry.own_mean:.2f}")
    return Stat(entry.printed_mean, 0.0, 1)


def _sort_key(row: Row) -> tuple[int, float]:
    mean = row.cells[-4]
    return (0, -mean.mean) if isinstance(mean, Stat) else (1, 0.0)


def leaderboard_table(inp: ReportInput) -> Table:
    """The leaderboard of ``inp``'s suite (see the module docstring)."""
    if not inp.datasets:  # a suite without transfer datasets (upstream): nothing to rank
        return Table("leaderboard", "Leaderboard: zero-shot (direct) transfer, measured and published",
                     ("mean",), (), stub="model")
    entries = _measured(inp) + (_published(inp.datasets) if inp.published is not None else [])
    for entry in entries:
        entry.verdicts = {dataset: verdict(entry.declared, dataset) for dataset in inp.datasets}
    rows = sorted((Row(e.label, _cells(e, inp.datasets), e.method, "", e.published) for e in entries), key=_sort_key)
    notes = [
        ("Measured rows: this store's direct (zero-shot) cells, AP x100, mean over seeds. Published rows: copied "
        "from their sources; 'mean' is recomputed here over the columns shown."),
        "zero-shot mean: the mean over the columns without a mark; (k/N) when it leaves some out.",
        (f"printed mean: the mean the source prints over its own datasets; '≠ x' flags one that differs from the "
        f"mean x of its own columns by more than rounding ({ROUNDING})."),
    ]
    for entry in entries:
        notes += _mark_notes(entry, inp.datasets)
    return Table("leaderboard", "Leaderboard: zero-shot (direct) transfer, measured and published",
                 (*inp.datasets, "mean", "zero-shot mean", "printed mean", "protocol"), tuple(rows),
                 stub="model", footnotes=tuple(notes))


def flagged_means(table: Table) -> list[str]:
    """The rows whose printed mean disagrees with their own columns (for tests and the CLI)."""
    column = table.columns.index("printed mean")
    return [row.label for row in table.rows if isinstance(row.cells[column], Marked)]
