"""``render_report``: a pure function of the results store that writes Markdown, CSV, LaTeX and PNGs."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from harness.catalog.datasets import class_names, get_suite
from harness.catalog.unseen import unseen_classes
from harness.reporting import figures as figs
from harness.reporting import formats, tables
from harness.reporting.averages import Unseen, UnseenRule
from harness.reporting.cells import load_cells, load_pretrain
from harness.reporting.leaderboard import leaderboard_table
from harness.reporting.model import Table
from harness.reporting.published import load_published
from harness.reporting.upstream_tables import upstream_tables
from scaledet.errors import ScaleDetError
from scaledet.files import atomic_write_text

log = logging.getLogger(__name__)

ODINW13 = get_suite("odinw13").datasets  # the paper's Table D order


@dataclass
class Report:
    """The tables (in document order) and figures of one report; ``missing_figures`` says why not drawn."""

    title: str
    inp: tables.ReportInput
    tables: list[Table]
    figures: dict[str, tuple[str, Figure]] = field(default_factory=dict)  # stem -> (caption, figure)
    missing_figures: dict[str, str] = field(default_factory=dict)  # caption -> reason
    command: str | None = None  # the command line that rendered it, for the provenance footer


def suite_datasets(suite: str, cells: pd.DataFrame) -> tuple[str, ...]:
    """The suite's datasets in report order: the paper's order for odinw13, GLIP's for odinw35, else those in the
    results."""
    if suite == "odinw13":
        return ODINW13
    if suite == "odinw35":
        return get_suite("odinw35").datasets
    log.info("suite %s: using the datasets present in the results, sorted", suite)
    return tuple(sorted(set(cells["dataset"])))


def _class_names(suite: str, dataset: str) -> frozenset[str] | None:
    """The registry's classes of ``dataset`` in ``suite`` (None for a dataset the registry does not know)."""
    try:
        return frozenset(class_names(dataset, suite))
    except ScaleDetError:
        return None


def default_unseen_rule(suite: str, datasets: tuple[str, ...]) -> UnseenRule:
    """``harness.catalog.unseen.unseen_classes(suite, upstream, rule="names")``, per dataset."""

    def classes(upstream: tuple[str, ...]) -> Unseen:
        names = frozenset(unseen_classes(suite, list(upstream), rule="names"))
        # the suite's unseen names count for a dataset only where the dataset has that class
        return {d: names if (own := _class_names(suite, d)) is None else names & own for d in datasets}

    return UnseenRule('names (harness.catalog.unseen.unseen_classes, rule="names")', classes)


def build_report(inp: tables.ReportInput, title: str) -> Report:
    """All tables and figures of a report from its input (no file is written)."""
    per_mode = {mode: tables.per_dataset_table(inp, mode) for mode in ("direct", "finetune")}
    scaling, fewshot = tables.scaling_table(inp), tables.fewshot_table(inp)
    modes, curves = tables.transfer_modes_table(inp), tables.transfer_curves_table(inp)
    pretrain = upstream_tables(inp)
    report = Report(title, inp, [*pretrain, tables.summary_table(inp), leaderboard_table(inp), *per_mode.values(),
                                 tables.averages_table(inp, "direct"), tables.averages_table(inp, "finetune"),
                                 tables.ablation_table(inp), scaling, fewshot, modes, curves])  # fmt: skip
    _add_figures(report, per_mode, scaling, fewshot)
    _add_transfer_figures(report, modes, curves)
    return report


def _add_transfer_figures(report: Report, modes: Table, curves: Table) -> None:
    """GLIP's Figure 5 (mean AP against the data, a line per way of tuning) and the modes per dataset as bars."""
    caption = "Transfer modes by amount of data (GLIP's Figure 5 style)"
    if not curves.rows:
        report.missing_figures[caption] = "no linear-probing or prompt-tuning results"
        return
    report.figures["transfer_curves"] = (caption, figs.transfer_curves_figure(curves))
    report.figures["transfer_modes"] = ("Transfer modes per dataset", figs.table_figure(modes))


def _add_figures(report: Report, per_mode: dict[str, Table], scaling: Table, fewshot: Table) -> None:
    fig3, fig4 = "Figure 3 style: averages vs upstream datasets", "Figure 4 style: AP per dataset vs upstream"
    if scaling.rows:
        report.figures["figure3_scaling"] = (fig3, figs.scaling_figure(scaling))
        report.figures["figure4_per_dataset"] = (fig4, figs.per_dataset_scaling_figure(
            scaling, report.inp.datasets))  # fmt: skip
    else:
        report.missing_figures[fig3] = report.missing_figures[fig4] = "no direct results of scaledet"
    finetuned = {row.label for row in per_mode["finetune"].rows if not row.published}
    for row in per_mode["direct"].rows:
        if row.label in finetuned:
            caption = f"Fine-tune vs direct per dataset: {row.label}"
            report.figures[f"bars_{slug(row.label)}"] = (caption, figs.bars_figure(
                per_mode["direct"], per_mode["finetune"], row.label))  # fmt: skip
    if not any(stem.startswith("bars_") for stem in report.figures):
        report.missing_figures["Fine-tune vs direct per dataset"] = "no checkpoint has both modes"
    for mode, table in per_mode.items():  # Table D as a chart, for every mode with results of our own
        caption = f"Per-dataset AP, {tables.MODE_TITLES[mode]}, beside the published rows"
        if any(not row.published for row in table.rows):
            report.figures[f"per_dataset_{mode}"] = (caption, figs.table_figure(table))
        else:
            report.missing_figures[caption] = f"no {mode} results"
    if fewshot.rows:
        report.figures["fewshot_shots"] = ("AP vs shots (mean ± std over seeds)", figs.shots_figure(fewshot))
    else:
        report.missing_figures["AP vs shots"] = "no few-shot results"


def slug(text: str) -> str:
    """A file-name-safe version of a row label."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def _unseen_section(inp: tables.ReportInput) -> str:
    if inp.unseen is None:
        return "No unseen-class rule is available, so no unseen classes are listed.\n"
    lines = []
    for upstream in sorted({u for u in inp.cells["upstream"] if u}, key=lambda u: (len(u.split("+")), u)):
        unseen = inp.unseen.classes(tuple(upstream.split("+")))
        found = "; ".join(f"{d}: {', '.join(sorted(unseen[d]))}" for d in inp.datasets if unseen.get(d))
        empty = ", ".join(d for d in inp.datasets if not unseen.get(d))
        lines.append(f"- upstream {upstream}: {found or 'none'}. Datasets with no unseen classes: "
                     f"{empty or 'none'}.")  # fmt: skip
    return f"Rule: {inp.unseen.name}.\n\n" + ("\n".join(lines) or "No checkpoint records its upstream.") + "\n"


def markdown(report: Report) -> str:
    """The whole report as one Markdown document, figures and per-table files linked relatively."""
    parts = [f"# {report.title}\n"]
    for table in report.tables:
        parts.append(f"## {table.title}\n\n{formats.markdown_table(table)}"
                     f"\nFiles: [CSV](csv/{table.name}.csv), [LaTeX](latex/{table.name}.tex)\n")  # fmt: skip
    parts.append("## Unseen classes\n\n" + _unseen_section(report.inp))
    figures = [f"![{caption}](figures/{stem}.png)\n" for stem, (caption, _) in report.figures.items()]
    figures += [f"- {caption}: not drawn ({reason}).\n" for caption, reason in report.missing_figures.items()]
    parts.append("## Figures\n\n" + "\n".join(figures))
    fields = formats.provenance(report.inp.cells)
    if report.command:
        fields["command"] = f"`{report.command}`"
    parts.append("## Provenance\n\n" + formats.provenance_markdown(fields))
    return "\n".join(parts)


def write_report(report: Report, out: Path) -> Path:
    """Write README.md, csv/*.csv, latex/*.tex and figures/*.png under ``out``; return the Markdown path."""
    for table in report.tables:
        atomic_write_text(out / "csv" / f"{table.name}.csv", formats.csv_table(table))
        atomic_write_text(out / "latex" / f"{table.name}.tex", formats.latex_table(table))
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for stem, (_, fig) in report.figures.items():
        figs.save(fig, out / "figures" / f"{stem}.png")
    atomic_write_text(out / "README.md", markdown(report))
    return out / "README.md"


def render_report(results: Path, suite: str, out: Path, sweep: str | None = None, *,
                  published: bool = True, unseen: UnseenRule | None = None, command: str | None = None) -> Path:
    """Render the report of ``suite`` (optionally one ``sweep``) from the store at ``results`` into ``out``.

    ``unseen`` is an ``UnseenRule``, or None for ``harness.catalog.unseen.unseen_classes`` (rule "names").
    ``command``, if given, is named in the provenance footer as what rendered the report.
    Returns the path of the Markdown file.
    """
    cells = load_cells(Path(results), suite, sweep)
    pretrain = load_pretrain(Path(results), suite, sweep)
    if cells.empty and pretrain.empty:
        log.warning("no results of suite %s under %s%s", suite, results, f" (sweep {sweep})" if sweep else "")
    datasets = suite_datasets(suite, cells)
    rule = unseen or default_unseen_rule(suite, datasets)
    inp = tables.ReportInput(suite, datasets, cells, load_published(suite) if published else None, rule, pretrain)
    title = f"Report: suite {suite}" + (f", sweep {sweep}" if sweep else "")
    report = build_report(inp, title)
    report.command = command
    return write_report(report, Path(out))

