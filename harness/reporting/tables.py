"""The report's transfer tables, built from the cell frame: per dataset (Table D), summary (Table 7), averages
(Table 8b), ablation (Table 8b), scaling (Figures 3-4) and few-shot. The upstream ones are
``harness.reporting.upstream_tables``'s."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd

from harness.job import FEWSHOT_MODES, TUNING_OF_MODE
from harness.reporting import averages as avg
from harness.reporting.model import Cell, Missing, Row, Stat, Table, row_label
from harness.reporting.published import Published
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


def sort_key(key: tuple[str, ...]) -> tuple[int, str, int, str, str]:
    method, upstream, checkpoint = (*key, "")[:3]
    size = len(upstream.split("+")) if upstream else 0
    return (METHOD_ORDER.get(method, 9), method, size, upstream, checkpoint)


def method_groups(cells: pd.DataFrame) -> Iterator[tuple[str, str, str, pd.DataFrame]]:
    """(row label, method, upstream, cells) per method and checkpoint, in the report's order."""
    groups = dict(iter(cells.groupby(["method", "upstream", "checkpoint"], sort=False)))
    for method, upstream, checkpoint in sorted(groups, key=sort_key):
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
                avg.dataset_mean)), m, u) for label, m, u, g in method_groups(_mode(inp, mode))]  # fmt: skip
    rows += [Row(row_label(m, "", True), (*_dataset_cells(g, inp.datasets),
                 avg.over_seeds(g, inp.datasets, avg.dataset_mean)), m, "", True)
             for m, g in _published_groups(inp, mode)]  # fmt: skip
    notes = (CELL_NOTE, "mean: " + avg.DEFINITIONS["mAP"], *_published_note(inp))
    return Table(f"per_dataset_{mode}", f"Per-dataset AP, {MODE_TITLES[mode]} (like Table D)",
                 (*inp.datasets, "mean"), tuple(rows), footnotes=notes)


def summary_table(inp: ReportInput) -> Table:
    """Table 7 style: the mean over datasets per method, direct and fine-tune side by side."""
    modes = ("direct", "finetune")
    cells: dict[tuple[str, str, str, bool], dict[str, Cell]] = {}  # (label, method, upstream, published)
    for mode in modes:
        for label, m, u, g in method_groups(_mode(inp, mode)):
            cells.setdefault((label, m, u, False), {})[mode] = avg.over_seeds(g, inp.datasets, avg.dataset_mean)
        for m, g in _published_groups(inp, mode):
            key = (row_label(m, "", True), m, "", True)
            cells.setdefault(key, {})[mode] = avg.over_seeds(g, inp.datasets, avg.dataset_mean)
        for (pmode, m), mean in (inp.published.means.items() if inp.published else ()):
            if pmode == mode:
                cells.setdefault((row_label(m, "", True), m, "", True), {})[mode] = Stat(mean, 0.0, 1)
    own = sorted((k for k in cells if not k[3]), key=lambda k: (*sort_key(k[1:3]), k[0]))
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
    rows = tuple(Row(label, _averages(g, inp), m, u) for label, m, u, g in method_groups(_mode(inp, mode)))
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
    groups = [(u, g) for _, m, u, g in method_groups(direct) if m == method and u]
    rows = tuple(Row(f"{len(u.split('+'))}: {u}", (*_averages(g, inp), *_dataset_cells(g, inp.datasets)),
                     method, u) for u, g in groups)  # fmt: skip
    notes = ((f"Method {method}, direct transfer; rows are checkpoints ordered by their number of "
             "upstream datasets."), *average_notes(inp), 
             *no_ground_truth_notes(direct[direct["method"].eq(method) & direct["upstream"].ne("")]))  # fmt: skip
    return Table("scaling", f"Scaling the upstream datasets: {method}, direct transfer (Figures 3-4)",
                 (*AVERAGE_COLUMNS, *inp.datasets), rows, stub="upstream datasets", footnotes=notes)


TUNING_TITLES = {"linear": "linear probing", "prompt": "prompt tuning", "full": "full fine-tune"}
FULL_DATA_MODE = {t: m for m, t in TUNING_OF_MODE.items() if m not in FEWSHOT_MODES}  # tuning -> full-data mode
TRANSFER_NOTES = (("direct: the checkpoint with the target's vocabulary (nothing trained); linear probing: only the "
                   "box classifier's projection and bias trained; prompt tuning: only the target's label embeddings "
                   "(from the text encoder's); full fine-tune: every weight. k-shot rows train on k images per class "
                   "(GLIP's files where the data has them). docs/harness.md, 'Transfer modes'."),)


def _transfer_cells(inp: ReportInput) -> pd.DataFrame:
    return inp.cells[inp.cells["mode"].isin(("direct", *TUNING_OF_MODE))]


def _has_probes(inp: ReportInput) -> bool:
    """Whether the store holds linear-probing or prompt-tuning results (the transfer-modes tables need them)."""
    return bool(inp.cells["mode"].map(lambda m: TUNING_OF_MODE.get(m, "full") != "full").any())


def _trained_groups(inp: ReportInput) -> list[tuple[str, str, str, pd.DataFrame]]:
    """The method/checkpoint groups with a trained transfer cell (a checkpoint only scored directly, e.g. the
    scaling sweep's, has nothing to put side by side)."""
    return [(label, m, u, g) for label, m, u, g in method_groups(_transfer_cells(inp)) if (g["mode"] != "direct").any()]


def _transfer_rows(group: pd.DataFrame) -> Iterator[tuple[str, str, int, pd.DataFrame]]:
    """(row name, tuning, shots (0: full data; -1: direct), cells) in GLIP's order: direct, the full-data modes,
    then each k of the few-shot kinds; only those with cells."""
    if (group["mode"] == "direct").any():
        yield "direct", "direct", -1, group[group["mode"] == "direct"]
    for tuning, title in TUNING_TITLES.items():
        cells = group[group["mode"] == FULL_DATA_MODE[tuning]]
        if len(cells):
            yield title, tuning, 0, cells
    few = group[group["mode"].isin(FEWSHOT_MODES)]
    for k in sorted(set(few["shots"])):
        for tuning, title in TUNING_TITLES.items():
            cells = few[(few["shots"] == k) & few["mode"].map(lambda m, t=tuning: TUNING_OF_MODE[m] == t)]
            if len(cells):
                yield f"{title}, {k}-shot", tuning, int(k), cells


def transfer_modes_table(inp: ReportInput) -> Table:
    """Direct, linear probing, prompt tuning and full fine-tune, full-data and k-shot, side by side per dataset and
    on average (ELEVATER's summaries); no rows without linear or prompt results."""
    rows = [] if not _has_probes(inp) else [
        Row(f"{label}: {name}", (*_dataset_cells(cells, inp.datasets),
            avg.over_seeds(cells, inp.datasets, avg.dataset_mean)), m, u)
        for label, m, u, g in _trained_groups(inp) for name, _, _, cells in _transfer_rows(g)]
    notes = (*TRANSFER_NOTES, "mean: " + avg.DEFINITIONS["mAP"], CELL_NOTE)
    return Table("transfer_modes", "Transfer modes side by side: per dataset and mean (like ELEVATER's summaries)",
                 (*inp.datasets, "mean"), tuple(rows), footnotes=notes)


def transfer_curves_table(inp: ReportInput) -> Table:
    """GLIP's Figure 5 as a table: the mean over datasets by data amount (direct, each k, full data), one row per
    way of tuning; direct is every row's zero point."""
    cells = _transfer_cells(inp)
    found = _trained_groups(inp) if _has_probes(inp) else []
    shots = sorted({int(k) for k in cells[cells["mode"].isin(FEWSHOT_MODES)]["shots"]})
    columns = ("direct", *(f"{k}-shot" for k in shots), "full data")
    rows = []
    for label, m, u, g in found:
        parts = list(_transfer_rows(g))
        direct = next((c for _, t, _, c in parts if t == "direct"), None)
        for tuning, title in TUNING_TITLES.items():
            mine = {k: c for _, t, k, c in parts if t == tuning}
            if not mine:
                continue
            values = [direct, *(mine.get(k) for k in shots), mine.get(0)]
            rows.append(Row(f"{label}: {title}", tuple(
                Missing("missing") if v is None else avg.over_seeds(v, inp.datasets, avg.dataset_mean)
                for v in values), m, u))
    notes = ("Each value is the " + avg.DEFINITIONS["mAP"], *TRANSFER_NOTES, CELL_NOTE)
    return Table("transfer_curves", "Transfer modes by amount of data: mean over datasets (like GLIP's Figure 5)",
                 columns, tuple(rows), footnotes=notes)


def fewshot_table(inp: ReportInput) -> Table:
    """Mean over datasets per number of shots (mean ± std over seeds), one row per method/checkpoint."""
    cells = _mode(inp, "fewshot")
    shots = sorted(set(cells["shots"]))
    rows = tuple(Row(label, tuple(avg.over_seeds(g[g["shots"] == k], inp.datasets,
                 avg.dataset_mean) for k in shots), m, u) for label, m, u, g in method_groups(cells))  # fmt: skip
    notes = ("Each value is the " + avg.DEFINITIONS["mAP"], CELL_NOTE)
    return Table("fewshot", "Few-shot transfer: mean over datasets by number of shots",
                 tuple(f"{k}-shot" for k in shots), rows, footnotes=notes)
