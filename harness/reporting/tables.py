"""The report's tables, built from the cell frame: upstream (Tables 1, 8a, 4 and A), per dataset (Table D), summary
(Table 7), averages (Table 8b), ablation (Table 8b), scaling (Figures 3-4) and few-shot."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd

from harness.catalog.datasets import SUITES, get_suite
from harness.reporting import averages as avg
from harness.reporting.model import Cell, Missing, Row, Stat, Table, row_label
from harness.reporting.published import Published, upstream_rows
from harness.workloads.methods import METHODS, SCALEDET, SCALEDET_HARD

METHOD_ORDER = {m.name: index for index, m in enumerate(METHODS)}
HARD_METHODS = tuple(m.name for m in METHODS if m.ablation == SCALEDET_HARD.ablation)  # ablation without L_sl
MODE_TITLES = {"direct": "direct transfer", "finetune": "fine-tune transfer"}
CELL_NOTE = ("Cells: COCO box AP@[.5:.95] x100, mean ± sample std over seeds (a value without ± comes "
             "from one seed); 'missing': the store has no result for that cell; 'failed': every run of it "
             "failed; 'missing (k/N datasets)': an average needs every dataset of one seed.")  # fmt: skip
AVERAGE_COLUMNS = ("mAP", "mAP_C", "mAP_unseen")


@dataclass(frozen=True)
class ReportInput:
    """Everything a report is a function of: the suite's datasets, the run cells and optional extras."""

    suite: str
    datasets: tuple[str, ...]
    cells: pd.DataFrame
    published: Published | None = None
    unseen: avg.UnseenRule | None = None
    pretrain: pd.DataFrame | None = None  # ``harness.reporting.cells.load_pretrain``: the pretrain cells


def _sort_key(key: tuple[str, ...]) -> tuple[int, str, int, str, str]:
    method, upstream, checkpoint = (*key, "")[:3]
    size = len(upstream.split("+")) if upstream else 0
    return (METHOD_ORDER.get(method, 9), method, size, upstream, checkpoint)


def _groups(cells: pd.DataFrame) -> Iterator[tuple[str, str, str, pd.DataFrame]]:
    """(row label, method, upstream, cells) per method and checkpoint, in the report's order."""
    groups = dict(iter(cells.groupby(["method", "upstream", "checkpoint"], sort=False)))
    for method, upstream, checkpoint in sorted(groups, key=_sort_key):
        label = row_label(method, upstream, checkpoint=checkpoint)
        yield label, method, upstream, groups[(method, upstream, checkpoint)]


def _published_groups(inp: ReportInput, mode: str) -> Iterator[tuple[str, pd.DataFrame]]:
    if inp.published is None:
        return
    cells = inp.published.cells[inp.published.cells["mode"] == mode]
    for method in dict.fromkeys(cells["method"]):
        yield method, cells[cells["method"] == method]


def _mode(inp: ReportInput, mode: str) -> pd.DataFrame:
    return inp.cells[inp.cells["mode"] == mode]


def _dataset_cell(cells: pd.DataFrame | None) -> Cell:
    if cells is None:
        return Missing("missing")
    done = cells[cells["status"] == "done"]
    return avg.stat(list(done["ap"])) if len(done) else Missing("failed")


def _dataset_cells(group: pd.DataFrame, datasets: tuple[str, ...]) -> list[Cell]:
    """Per-dataset AP over seeds; 'missing' without a result, 'failed' when every seed failed."""
    by_dataset = dict(iter(group.groupby("dataset")))
    return [_dataset_cell(by_dataset.get(d)) for d in datasets]


def _published_note(inp: ReportInput) -> tuple[str, ...]:
    if inp.published is None:
        return ()
    note = (f"Rows marked (published) are copied from {inp.published.source}; their mean is recomputed "
            "here from the per-dataset numbers.")  # fmt: skip
    return (note,)


def per_dataset_table(inp: ReportInput, mode: str) -> Table:
    """Table D style: one row per method/checkpoint, one column per dataset, then the mean."""
    rows = [Row(label, (*_dataset_cells(g, inp.datasets), avg.over_seeds(g, inp.datasets,
                avg.dataset_mean)), m, u) for label, m, u, g in _groups(_mode(inp, mode))]  # fmt: skip
    rows += [Row(row_label(m, "", True), (*_dataset_cells(g, inp.datasets),
                 avg.over_seeds(g, inp.datasets, avg.dataset_mean)), m, "", True)
             for m, g in _published_groups(inp, mode)]  # fmt: skip
    notes = (CELL_NOTE, "mean: " + avg.DEFINITIONS["mAP"], *_published_note(inp))
    return Table(f"per_dataset_{mode}", f"Per-dataset AP, {MODE_TITLES[mode]} (like Table D)",
                 (*inp.datasets, "mean"), tuple(rows), footnotes=notes)


UPSTREAM_NOTE = ("Upstream AP x100, mean ± sample std over seeds: COCO AP@[.5:.95] on COCO and Objects365, LVIS "
                 "federated AP, OpenImages AP50 over the expanded hierarchy; each model is scored on every upstream "
                 "dataset on disk, those it did not train on with their own label text (the paper's Table 1 grid). "
                 "mean: the plain mean over all the columns, per seed; 'missing (k/N datasets)' when a seed lacks "
                 "some; 'failed': every seed failed.")  # fmt: skip


def _upstream_columns(inp: ReportInput, frame: pd.DataFrame) -> list[str]:
    """The suite's upstream datasets in the paper's order (L, C, O365, OID), then any other a record has."""
    order = list(get_suite(inp.suite).upstream) if inp.suite in SUITES else []
    found = dict.fromkeys(n for per in frame.get("dataset_ap", []) for n in per)
    return order + sorted(n for n in found if n not in order)


def _in_order(upstream: str, names: list[str]) -> str:
    """``coco+lvis`` as the tables print it: in the columns' order (the paper's L, C, O365, OID)."""
    return "+".join(sorted(upstream.split("+"), key=lambda n: (names.index(n) if n in names else len(names), n)))


def _upstream_cells(group: pd.DataFrame, names: list[str]) -> tuple[Cell, ...]:
    """AP per upstream dataset over seeds, then the mean over all of them (a seed lacking one: missing)."""
    done = group[group["status"] == "done"]
    if not len(done):
        return tuple(Missing("failed") for _ in [*names, None])
    cells: list[Cell] = []
    for name in names:
        values = [per[name] for per in done["dataset_ap"] if name in per]
        cells.append(avg.stat(values) if values else Missing("missing"))
    complete = [sum(per[n] for n in names) / len(names) for per in done["dataset_ap"] if set(names) <= set(per)]
    most = max(len(set(names) & set(per)) for per in done["dataset_ap"])
    cells.append(avg.stat(complete) if complete else Missing(f"missing ({most}/{len(names)} datasets)"))
    return tuple(cells)


PAPER_TABLES = {"table1": "Table 1", "table8a": "Table 8a", "table4": "Table 4", "tableA": "Table A"}


def _published_upstream(table: str, names: list[str]) -> tuple[list[Row], tuple[str, ...]]:
    source, published = upstream_rows(table)
    if not published or any(name not in r.ap for r in published for name in names):
        return [], ()
    rows = [Row(f"{r.method} [{r.upstream}] (published)", (*(Stat(r.ap[n], 0.0, 1) for n in names),
                Stat(r.mean, 0.0, 1)), r.method, r.upstream, True) for r in published]  # fmt: skip
    note = f"Rows marked (published) are copied from {source} {PAPER_TABLES[table]}; their mean is the printed one."
    return rows, (note,)


def _pretrain_frame(inp: ReportInput) -> pd.DataFrame:
    return inp.pretrain if inp.pretrain is not None else pd.DataFrame(columns=["method", "upstream", "backbone"])


def _pretrain_groups(frame: pd.DataFrame) -> list[tuple[tuple[str, str, str], pd.DataFrame]]:
    """((method, upstream, backbone), cells) in the report's order: a backbone is a model of its own."""
    if not len(frame):
        return []
    groups = frame.groupby(["method", "upstream", "backbone"])
    return sorted(groups, key=lambda item: (_sort_key(item[0][:2]), item[0]))


def _pretrain_label(method: str, upstream: str, backbone: str, names: list[str], frame: pd.DataFrame) -> str:
    """``method [datasets]``, with the backbone when the frame has more than one."""
    several = len(set(frame["backbone"])) > 1
    return f"{method} [{_in_order(upstream, names)}]" + (f" ({backbone or 'backbone unknown'})" if several else "")


def pretrain_table(inp: ReportInput) -> Table:
    """Table 1: each pretrained detector's AP on every upstream dataset, and their mean; the paper's rows beside
    (for the upstream suite)."""
    frame = _pretrain_frame(inp)
    names = _upstream_columns(inp, frame)
    rows = [Row(_pretrain_label(*key, names, frame), _upstream_cells(group, names), key[0], key[1])
            for key, group in _pretrain_groups(frame)]
    published, note = _published_upstream("table1", names) if inp.suite == "upstream" else ([], ())
    return Table("pretrain", "Upstream AP of the pretrained detectors (like Table 1)", (*names, "mean"),
                 tuple(rows + published), footnotes=(UPSTREAM_NOTE, *note))


def upstream_ablation_table(inp: ReportInput) -> Table:
    """Table 8a: L_hl (scaledet-hard) vs L_hl + L_sl (scaledet) pretrained on the same upstream datasets with the
    same backbone, scored on every upstream dataset; only those that have both."""
    frame = _pretrain_frame(inp)
    names = _upstream_columns(inp, frame)
    pairs = frame[frame["method"].isin([*HARD_METHODS, SCALEDET.name])] if len(frame) else frame
    several = len(set(frame["backbone"])) > 1 if len(frame) else False
    rows = []
    for upstream, backbone in sorted(dict.fromkeys(zip(pairs["upstream"], pairs["backbone"])),
                                     key=lambda key: (len(key[0].split("+")), key)):
        same = pairs[(pairs["upstream"] == upstream) & (pairs["backbone"] == backbone)]
        groups = [same[same["method"].isin(m)] for m in (HARD_METHODS, (SCALEDET.name,))]
        suffix = f" ({backbone or 'backbone unknown'})" if several else ""
        if all(len(g) for g in groups):
            rows += [Row(f"{label} [{_in_order(upstream, names)}]{suffix}", _upstream_cells(g, names),
                         str(g["method"].iloc[0]), upstream)
                     for label, g in zip((SCALEDET_HARD.label, "L_hl+L_sl"), groups)]
    published, note = _published_upstream("table8a", names) if inp.suite == "upstream" and rows else ([], ())
    legend = (f"{SCALEDET_HARD.label} = method {SCALEDET_HARD.name} (hard label loss only); L_hl+L_sl = method "
              f"{SCALEDET.name}.")  # fmt: skip
    return Table("ablation_upstream", "Ablation on upstream datasets: hard vs hard + soft label loss (like Table 8a)",
                 (*names, "mean"), tuple(rows + published), footnotes=(legend, UPSTREAM_NOTE, *note))


@dataclass(frozen=True)
class DeticComparison:
    """A comparison to Detic on upstream datasets (the paper's Table 4 or A): which of our pretrained ScaleDet
    models enter it (backbone, upstream datasets it must include) and the columns it scores."""

    key: str  # the published table, and the report table's key
    title: str
    backbone: str
    needs: tuple[str, ...]  # upstream datasets a model must have trained on
    columns: tuple[str, ...] | None  # None: every upstream column of the report


DETIC_COMPARISONS = (
    DeticComparison("table4", "Comparison to Detic, ResNet-50 (like Table 4)", "r50", ("lvis", "coco"),
                    ("lvis", "coco")),
    DeticComparison("tableA", "Comparison to Detic, Swin-B (like Table A)", "swin-b", ("lvis", "coco"), None),
)


def detic_comparison_table(inp: ReportInput, comparison: DeticComparison) -> Table:
    """Our ScaleDet models of ``comparison``'s backbone trained on (at least) its datasets, scored on its columns
    with their mean, the paper's rows (Detic's and ScaleDet's) beside; rows labelled with the text encoder."""
    frame = _pretrain_frame(inp)
    names = list(comparison.columns) if comparison.columns else _upstream_columns(inp, frame)
    ours = frame[(frame["method"] == SCALEDET.name) & (frame["backbone"] == comparison.backbone)] if len(frame) \
        else frame
    ours = ours[[set(comparison.needs) <= set(u.split("+")) for u in ours["upstream"]]] if len(ours) else ours
    rows = [Row(f"{method} [{_in_order(upstream, names)}] ({backbone}, {_encoders(group)})",
                _upstream_cells(group, names), method, upstream)
            for (method, upstream, backbone), group in _pretrain_groups(ours)]
    published, note = _published_upstream(comparison.key, names) if rows else ([], ())
    return Table(comparison.key, comparison.title, (*names, "mean"), tuple(rows + published),
                 footnotes=(UPSTREAM_NOTE, *note))


def _encoders(group: pd.DataFrame) -> str:
    return "+".join(sorted(e for e in dict.fromkeys(group["text_encoder"]) if e)) or "text encoder unknown"


def summary_table(inp: ReportInput) -> Table:
    """Table 7 style: the mean over datasets per method, direct and fine-tune side by side."""
    modes = ("direct", "finetune")
    cells: dict[tuple[str, str, str, bool], dict[str, Cell]] = {}  # (label, method, upstream, published)
    for mode in modes:
        for label, m, u, g in _groups(_mode(inp, mode)):
            cells.setdefault((label, m, u, False), {})[mode] = avg.over_seeds(g, inp.datasets, avg.dataset_mean)
        for m, g in _published_groups(inp, mode):
            key = (row_label(m, "", True), m, "", True)
            cells.setdefault(key, {})[mode] = avg.over_seeds(g, inp.datasets, avg.dataset_mean)
        for (pmode, m), mean in (inp.published.means.items() if inp.published else ()):
            if pmode == mode:
                cells.setdefault((row_label(m, "", True), m, "", True), {})[mode] = Stat(mean, 0.0, 1)
    own = sorted((k for k in cells if not k[3]), key=lambda k: (*_sort_key(k[1:3]), k[0]))
    keys = own + [k for k in cells if k[3]]
    rows = tuple(Row(k[0], tuple(cells[k].get(mode, Missing("missing")) for mode in modes), *k[1:])
                 for k in keys)  # fmt: skip
    notes = ("Each value is the " + avg.DEFINITIONS["mAP"], CELL_NOTE, *_published_note(inp))
    return Table("summary", "Summary: direct and fine-tune transfer (like Table 7)",
                 ("direct mAP", "fine-tune mAP"), rows, footnotes=notes)


def _averages(group: pd.DataFrame, inp: ReportInput) -> tuple[Cell, Cell, Cell]:
    classes = avg.class_cell(group, inp.datasets)
    return (avg.over_seeds(group, inp.datasets, avg.dataset_mean), classes,
            avg.unseen_cell(group, inp.datasets, inp.unseen))  # fmt: skip


def average_notes(inp: ReportInput) -> tuple[str, ...]:
    """Footnotes defining the three averages and naming the unseen rule."""
    rule = inp.unseen.name if inp.unseen else "none given"
    notes = [f"{name}: {text}" for name, text in avg.DEFINITIONS.items()]
    return (*notes, f"Unseen-class rule: {rule}.", CELL_NOTE)


def no_ground_truth_notes(cells: pd.DataFrame) -> tuple[str, ...]:
    """A footnote naming the classes left out of the class averages for lack of ground truth (if any)."""
    lacking = avg.no_ground_truth(cells)
    if not lacking:
        return ()
    by_dataset: dict[str, list[str]] = {}
    for dataset, name in lacking:
        by_dataset.setdefault(dataset, []).append(name)
    names = "; ".join(f"{dataset}: {', '.join(classes)}" for dataset, classes in by_dataset.items())
    note = (f"{avg.NO_GROUND_TRUTH.reason}: classes with no ground truth in the evaluation split (per-class AP "
            f"-1, the pycocotools convention) are left out of mAP_C and mAP_unseen, in at least one seed: "
            f"{names}.")  # fmt: skip
    return (note,)


def averages_table(inp: ReportInput, mode: str) -> Table:
    """The three averages per method/checkpoint for one mode (run results only)."""
    rows = tuple(Row(label, _averages(g, inp), m, u) for label, m, u, g in _groups(_mode(inp, mode)))
    return Table(f"averages_{mode}", f"Three averages, {MODE_TITLES[mode]}", AVERAGE_COLUMNS, rows,
                 footnotes=(*average_notes(inp), *no_ground_truth_notes(_mode(inp, mode))))


def ablation_table(inp: ReportInput) -> Table:
    """Table 8 style: L_hl (scaledet-hard) vs L_hl + L_sl (scaledet) on the same upstream data, direct."""
    direct = _mode(inp, "direct")
    pairs = direct[direct["method"].isin([*HARD_METHODS, SCALEDET.name])]
    rows = []
    for upstream in sorted(dict.fromkeys(pairs["upstream"]), key=lambda u: (len(u.split("+")), u)):
        cells: list[Cell] = []
        for methods in (HARD_METHODS, (SCALEDET.name,)):
            group = pairs[pairs["method"].isin(methods) & (pairs["upstream"] == upstream)]
            cells += _averages(group, inp)[:2] if len(group) else [Missing("missing")] * 2
        rows.append(Row(upstream or "unknown", tuple(cells), "", upstream))
    columns = ("L_hl mAP", "L_hl mAP_C", "L_hl+L_sl mAP", "L_hl+L_sl mAP_C")
    legend = (f"{SCALEDET_HARD.label} = method {SCALEDET_HARD.name} (hard label loss only); "
              f"L_hl+L_sl = method {SCALEDET.name}. Rows: the checkpoints' upstream datasets.")  # fmt: skip
    notes = (legend, *average_notes(inp)[:2], CELL_NOTE, *no_ground_truth_notes(pairs))
    return Table("ablation", "Ablation: hard vs hard + soft label loss, direct transfer (like Table 8b)",
                 columns, tuple(rows), stub="upstream", footnotes=notes)


def scaling_table(inp: ReportInput, method: str = "scaledet") -> Table:
    """Figures 3-4 data: direct transfer of ``method`` per checkpoint, by number of upstream datasets."""
    direct = _mode(inp, "direct")
    groups = [(u, g) for _, m, u, g in _groups(direct) if m == method and u]
    rows = tuple(Row(f"{len(u.split('+'))}: {u}", (*_averages(g, inp), *_dataset_cells(g, inp.datasets)),
                     method, u) for u, g in groups)  # fmt: skip
    notes = ((f"Method {method}, direct transfer; rows are checkpoints ordered by their number of "
             "upstream datasets."), *average_notes(inp), 
             *no_ground_truth_notes(direct[direct["method"].eq(method) & direct["upstream"].ne("")]))  # fmt: skip
    return Table("scaling", f"Scaling the upstream datasets: {method}, direct transfer (Figures 3-4)",
                 (*AVERAGE_COLUMNS, *inp.datasets), rows, stub="upstream datasets", footnotes=notes)


def fewshot_table(inp: ReportInput) -> Table:
    """Mean over datasets per number of shots (mean ± std over seeds), one row per method/checkpoint."""
    cells = _mode(inp, "fewshot")
    shots = sorted(set(cells["shots"]))
    rows = tuple(Row(label, tuple(avg.over_seeds(g[g["shots"] == k], inp.datasets,
                 avg.dataset_mean) for k in shots), m, u) for label, m, u, g in _groups(cells))  # fmt: skip
    notes = ("Each value is the " + avg.DEFINITIONS["mAP"], CELL_NOTE)
    return Table("fewshot", "Few-shot transfer: mean over datasets by number of shots",
                 tuple(f"{k}-shot" for k in shots), rows, footnotes=notes)
