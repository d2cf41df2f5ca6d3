"""The report's upstream tables, from the pretrain frame (``harness.reporting.cells.load_pretrain``): Table 1 (every
pretrained model on every upstream dataset), Table 8a (L_hl vs L_hl + L_sl), Table 2 (backbones and text encoders,
with the ``*`` rows: a model trained further on each dataset), Table 3 (UniDet's setting: single vs multiple) and
Tables 4 and A (against Detic); the paper's rows beside."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.catalog.datasets import SUITES, get_suite
from harness.reporting import averages as avg
from harness.reporting.model import Cell, Missing, Row, Stat, Table
from harness.reporting.published import upstream_rows
from harness.reporting.tables import HARD_METHODS, ReportInput, sort_key
from harness.workloads.methods import BASELINE, SCALEDET, SCALEDET_HARD

UPSTREAM_NOTE = ("Upstream AP x100, mean ± sample std over seeds: COCO AP@[.5:.95] on COCO and Objects365, LVIS "
                 "federated AP, OpenImages AP50 over the expanded hierarchy; each model is scored on every upstream "
                 "dataset on disk, those it did not train on with their own label text (the paper's Table 1 grid). "
                 "mean: the plain mean over all the columns, per seed; 'missing (k/N datasets)' when a seed lacks "
                 "some; 'failed': every seed failed.")  # fmt: skip
FURTHER_NOTE = ("A row marked * is built from models trained further on one dataset each, starting from a "
                "multi-dataset model (the paper's Table 2 '*': \"further fine-tune the model on each dataset after "
                "multi-dataset training\"): each column is the AP of the model trained further on that dataset; "
                "mean: over the columns, per seed.")  # fmt: skip
# A model is a (method, datasets, backbone, text encoder, recipe, trained further) combination; seeds are its cells.
MODEL_KEYS = ["method", "upstream", "backbone", "text_encoder", "recipe", "further"]
PAPER_TABLES = {"table1": "Table 1", "table8a": "Table 8a", "table2": "Table 2", "table3": "Table 3",
                "table4": "Table 4", "tableA": "Table A"}
BACKBONE_LETTERS = {"r50": "R", "swin-t": "T", "swin-b": "B"}  # the paper's ScaleDet-R/T/B
UNIDET_DATASETS = ("coco", "objects365", "openimages")  # Table 3's columns
UNIDET_RECIPE = "sgd, standard aug"  # ``harness.reporting.cells.recipe_of`` of RECIPES["unidet"]


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


def _own_dataset_cells(group: pd.DataFrame, names: list[str]) -> tuple[Cell, ...]:
    """Per column, the AP of the models of ``group`` trained on that dataset alone, scored on it; then the mean over
    the columns per seed (the paper's '*' and 'single' rows: one model per column)."""
    cells: list[Cell] = []
    by_seed: dict[int, dict[str, float]] = {}
    for name in names:
        own = group[group["upstream"] == name]
        done = own[own["status"] == "done"]
        values = [(int(seed), per[name]) for seed, per in zip(done["seed"], done["dataset_ap"]) if name in per]
        for seed, value in values:
            by_seed.setdefault(seed, {})[name] = value
        cells.append(avg.stat([v for _, v in values]) if values else Missing("failed" if len(own) else "missing"))
    complete = [sum(per.values()) / len(names) for per in by_seed.values() if len(per) == len(names)]
    most = max((len(per) for per in by_seed.values()), default=0)
    cells.append(avg.stat(complete) if complete else Missing(f"missing ({most}/{len(names)} datasets)"))
    return tuple(cells)


def _published_upstream(table: str, names: list[str]) -> tuple[list[Row], tuple[str, ...]]:
    source, published = upstream_rows(table)
    if not published or any(name not in r.ap for r in published for name in names):
        return [], ()
    rows = [Row(f"{r.method} [{r.upstream}] (published)", (*(Stat(r.ap[n], 0.0, 1) for n in names),
                Stat(r.mean, 0.0, 1)), r.method, r.upstream, True) for r in published]  # fmt: skip
    note = f"Rows marked (published) are copied from {source} {PAPER_TABLES[table]}; their mean is the printed one."
    return rows, (note,)


def _pretrain_frame(inp: ReportInput) -> pd.DataFrame:
    return inp.pretrain if inp.pretrain is not None else pd.DataFrame(columns=MODEL_KEYS)


def _paper_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The models trained from ImageNet with the paper's recipe (not Table 3's, not a '*' run)."""
    return frame[(frame["recipe"] == "") & ~frame["further"].astype(bool)] if len(frame) else frame


def _models(frame: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """(model key (:data:`MODEL_KEYS`), its cells) in the report's order."""
    if not len(frame):
        return []
    return sorted(frame.groupby(MODEL_KEYS), key=lambda item: (sort_key(item[0][:2]), tuple(map(str, item[0]))))


def _model_label(key: tuple, names: list[str], frame: pd.DataFrame) -> str:
    """``method [datasets]`` (``method*`` when trained further), with the backbone and the text encoder when the
    frame has more than one of them, and a recipe other than the paper's."""
    method, upstream, backbone, encoder, recipe, further = key
    details = [backbone or "backbone unknown"] if _several(frame["backbone"]) else []
    details += [encoder or "text encoder unknown"] if _several(frame["text_encoder"]) else []
    details += [recipe] if recipe else []
    return f"{method}{'*' if further else ''} [{_in_order(upstream, names)}]" + (
        f" ({', '.join(details)})" if details else "")


def _several(values: pd.Series) -> bool:
    """More than one known value (a failed cell's record knows no encoder: that is not another one)."""
    return len({v for v in values if v}) > 1


def pretrain_table(inp: ReportInput) -> Table:
    """Table 1: each pretrained detector's AP on every upstream dataset, and their mean; the paper's rows beside
    (for the upstream suite)."""
    frame = _pretrain_frame(inp)
    names = _upstream_columns(inp, frame)
    rows = [Row(_model_label(key, names, frame), _upstream_cells(group, names), key[0], key[1])
            for key, group in _models(frame)]
    published, note = _published_upstream("table1", names) if inp.suite == "upstream" else ([], ())
    further = (FURTHER_NOTE,) if len(frame) and frame["further"].astype(bool).any() else ()
    return Table("pretrain", "Upstream AP of the pretrained detectors (like Table 1)", (*names, "mean"),
                 tuple(rows + published), footnotes=(UPSTREAM_NOTE, *further, *note))


def upstream_ablation_table(inp: ReportInput) -> Table:
    """Table 8a: L_hl (scaledet-hard) vs L_hl + L_sl (scaledet) pretrained on the same upstream datasets with the
    same backbone and text encoder (the paper's recipe), scored on every upstream dataset; only those with both."""
    frame = _pretrain_frame(inp)
    names = _upstream_columns(inp, frame)
    runs = _paper_runs(frame)
    pairs = runs[runs["method"].isin([*HARD_METHODS, SCALEDET.name])] if len(runs) else runs
    several = len(frame) and (_several(frame["backbone"]) or _several(frame["text_encoder"]))
    rows = []
    for upstream, backbone, encoder in sorted(dict.fromkeys(zip(pairs["upstream"], pairs["backbone"],
                                                                pairs["text_encoder"])),
                                              key=lambda key: (len(key[0].split("+")), key)):
        same = pairs[(pairs["upstream"] == upstream) & (pairs["backbone"] == backbone)
                     & (pairs["text_encoder"] == encoder)]
        groups = [same[same["method"].isin(m)] for m in (HARD_METHODS, (SCALEDET.name,))]
        suffix = f" ({backbone or 'backbone unknown'}, {encoder or 'text encoder unknown'})" if several else ""
        if all(len(g) for g in groups):
            rows += [Row(f"{label} [{_in_order(upstream, names)}]{suffix}", _upstream_cells(g, names),
                         str(g["method"].iloc[0]), upstream)
                     for label, g in zip((SCALEDET_HARD.label, "L_hl+L_sl"), groups)]
    published, note = _published_upstream("table8a", names) if inp.suite == "upstream" and rows else ([], ())
    legend = (f"{SCALEDET_HARD.label} = method {SCALEDET_HARD.name} (hard label loss only); L_hl+L_sl = method "
              f"{SCALEDET.name}.")  # fmt: skip
    return Table("ablation_upstream", "Ablation on upstream datasets: hard vs hard + soft label loss (like Table 8a)",
                 (*names, "mean"), tuple(rows + published), footnotes=(legend, UPSTREAM_NOTE, *note))


def _further_rows(frame: pd.DataFrame, names: list[str], label: str = "{method}* ({backbone}, {encoder})"
                  ) -> list[Row]:
    """One '*' row per (method, backbone, text encoder) of the models trained further on one dataset each."""
    further = frame[frame["further"].astype(bool) & (frame["recipe"] == "")] if len(frame) else frame
    if not len(further):
        return []
    return [Row(label.format(method=method, backbone=backbone, encoder=encoder or "text encoder unknown",
                             letter=BACKBONE_LETTERS.get(backbone, backbone)),
                _own_dataset_cells(group, names), method, "")
            for (method, backbone, encoder), group in sorted(further.groupby(["method", "backbone", "text_encoder"]))]


def _trained_on(names: list[str]):
    """Whether an ``upstream`` value (``a+b``) is exactly the datasets ``names``."""
    return lambda upstream: set(upstream.split("+")) == set(names)


def backbone_table(inp: ReportInput) -> Table:
    """Table 2: ScaleDet trained on all the upstream datasets, one row per backbone and text encoder, then the '*'
    rows (trained further on each dataset); the paper's rows beside."""
    frame = _pretrain_frame(inp)
    names = _upstream_columns(inp, frame)
    runs = _paper_runs(frame)
    every = runs[(runs["method"] == SCALEDET.name) & runs["upstream"].map(_trained_on(names))] if len(runs) else runs
    order = {name: index for index, name in enumerate(BACKBONE_LETTERS)}
    rows = [Row(f"ScaleDet-{BACKBONE_LETTERS.get(backbone, backbone)} ({encoder or 'text encoder unknown'})",
                _upstream_cells(group, names), SCALEDET.name, "+".join(names))
            for (backbone, encoder), group in sorted(every.groupby(["backbone", "text_encoder"]) if len(every) else [],
                                                     key=lambda item: (order.get(item[0][0], 9), item[0]))]
    scaledet = frame[frame["method"] == SCALEDET.name] if len(frame) else frame
    rows += _further_rows(scaledet, names, "ScaleDet-{letter}* ({encoder})")
    if len(rows) < 2:  # a comparison of one model is Table 1's row again
        rows = []
    published, note = _published_upstream("table2", names) if rows else ([], ())
    return Table("table2_backbones", "Backbones and text encoders for multi-dataset training (like Table 2)",
                 (*names, "mean"), tuple(rows + published), footnotes=(UPSTREAM_NOTE, FURTHER_NOTE, *note))


def unidet_table(inp: ReportInput) -> Table:
    """Table 3: UniDet's setting (recipe ``unidet``: SGD, standard augmentation, ImageNet-1k R50) on COCO, O365
    and OID: 'single' (the baseline on each dataset alone) vs 'multiple' (ScaleDet on the three); the paper's UniDet
    and ScaleDet rows beside."""
    frame = _pretrain_frame(inp)
    names = list(UNIDET_DATASETS)
    runs = frame[frame["recipe"] == UNIDET_RECIPE] if len(frame) else frame
    rows = []
    for (backbone, encoder), group in sorted(runs.groupby(["backbone", "text_encoder"]) if len(runs) else []):
        suffix = f" ({backbone}, {encoder or 'text encoder unknown'})"
        single = group[(group["method"] == BASELINE.name) & group["upstream"].isin(names)]
        multiple = group[(group["method"] == SCALEDET.name) & group["upstream"].map(_trained_on(names))]
        if len(single):
            rows.append(Row(f"single: {BASELINE.name} on each dataset alone{suffix}",
                            _own_dataset_cells(single, names), BASELINE.name, "single"))
        if len(multiple):
            rows.append(Row(f"multiple: {SCALEDET.name} [{'+'.join(names)}]{suffix}",
                            _upstream_cells(multiple, names), SCALEDET.name, "+".join(names)))
    published, note = _published_upstream("table3", names) if rows else ([], ())
    legend = ("Recipe 'unidet' (harness.plan.suite_settings.RECIPES): SGD, detectron2's standard augmentation, "
              "ImageNet-1k backbone, UniDet's schedules (2x single, 8x multiple). single: each column is the "
              "baseline trained on that dataset alone; mean: over the three columns, per seed.")  # fmt: skip
    return Table("table3_unidet", "UniDet's setting: single vs multi-dataset training (like Table 3)",
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
    further: bool  # with the '*' row (Table A's ScaleDet-B*)


DETIC_COMPARISONS = (
    DeticComparison("table4", "Comparison to Detic, ResNet-50 (like Table 4)", "r50", ("lvis", "coco"),
                    ("lvis", "coco"), False),
    DeticComparison("tableA", "Comparison to Detic, Swin-B (like Table A)", "swin-b", ("lvis", "coco"), None, True),
)


def detic_comparison_table(inp: ReportInput, comparison: DeticComparison) -> Table:
    """Our ScaleDet models of ``comparison``'s backbone trained on (at least) its datasets, scored on its columns
    with their mean (and, for Table A, the '*' row), the paper's rows (Detic's and ScaleDet's) beside; rows
    labelled with the text encoder."""
    frame = _pretrain_frame(inp)
    names = list(comparison.columns) if comparison.columns else _upstream_columns(inp, frame)
    runs = _paper_runs(frame)
    ours = runs[(runs["method"] == SCALEDET.name) & (runs["backbone"] == comparison.backbone)] if len(runs) else runs
    ours = ours[[set(comparison.needs) <= set(u.split("+")) for u in ours["upstream"]]] if len(ours) else ours
    rows = [Row(f"{key[0]} [{_in_order(key[1], names)}] ({key[2]}, {key[3] or 'text encoder unknown'})",
                _upstream_cells(group, names), key[0], key[1])
            for key, group in _models(ours)]
    if comparison.further and len(frame):
        same = frame[(frame["method"] == SCALEDET.name) & (frame["backbone"] == comparison.backbone)]
        rows += _further_rows(same, names)
    published, note = _published_upstream(comparison.key, names) if rows else ([], ())
    further = (FURTHER_NOTE,) if comparison.further and any(r.label.split(" ")[0].endswith("*") for r in rows) else ()
    return Table(comparison.key, comparison.title, (*names, "mean"), tuple(rows + published),
                 footnotes=(UPSTREAM_NOTE, *further, *note))


def upstream_tables(inp: ReportInput) -> list[Table]:
    """Every upstream table the pretrain frame has rows for, in the report's order (Table 1 whenever there are
    pretrained models)."""
    if inp.pretrain is None or not len(inp.pretrain):
        return []
    tables = [pretrain_table(inp), upstream_ablation_table(inp),
              *(detic_comparison_table(inp, c) for c in DETIC_COMPARISONS), backbone_table(inp), unidet_table(inp)]
    return [tables[0], *(t for t in tables[1:] if any(not r.published for r in t.rows))]
