"""Writers: Markdown (tabulate, GitHub style), long CSV and LaTeX (booktabs) from ``Table`` objects,
and the provenance footer."""

from __future__ import annotations

import csv
import io

import pandas as pd
from tabulate import tabulate

from harness.reporting.model import Stat, Table

LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}  # fmt: skip


MARKDOWN_COLUMNS = 20  # a table with more value columns (ODinW-35's 35 datasets) is split into parts ...
PART_COLUMNS = 12  # ... of this many value columns each, the row labels repeated


def column_parts(count: int) -> list[range]:
    """The value-column index ranges a table of ``count`` columns is printed in (one part up to
    :data:`MARKDOWN_COLUMNS`)."""
    if count <= MARKDOWN_COLUMNS:
        return [range(count)]
    return [range(start, min(start + PART_COLUMNS, count)) for start in range(0, count, PART_COLUMNS)]


def markdown_table(table: Table) -> str:
    """The table as GitHub Markdown (split into parts of :data:`PART_COLUMNS` columns when wider than
    :data:`MARKDOWN_COLUMNS`), its footnotes as a numbered list under it."""
    if not table.rows:
        return "_No results for this table._\n"
    parts = column_parts(len(table.columns))
    bodies = []
    for number, part in enumerate(parts, 1):
        rows = [[row.label, *(row.cells[i].text() for i in part)] for row in table.rows]
        body = tabulate(rows, headers=[table.stub, *(table.columns[i] for i in part)], tablefmt="github",
                        disable_numparse=True)
        heading = f"_Part {number} of {len(parts)}: columns {part.start + 1}-{part.stop} of {len(table.columns)}_"
        bodies.append(body if len(parts) == 1 else f"{heading}\n\n{body}")
    notes = "".join(f"{i}. {note}\n" for i, note in enumerate(table.footnotes, 1))
    return "\n\n".join(bodies) + f"\n\n{notes}"


def csv_table(table: Table) -> str:
    """Long CSV: one line per cell with mean, std, seed count, or the reason it is missing (or its text), and its
    mark (see ``Marked``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([table.stub, "published", "column", "mean", "std", "n", "missing", "mark"])
    for row in table.rows:
        for column, cell in zip(table.columns, row.cells, strict=True):
            stats = [f"{cell.mean:.4f}", f"{cell.std:.4f}", cell.n] if isinstance(cell, Stat) else ["", "", 0]
            writer.writerow([row.label, row.published, column, *stats,
                             "" if isinstance(cell, Stat) else cell.text(), getattr(cell, "mark", "")])  # fmt: skip
    return out.getvalue()


def tex_escape(text: str) -> str:
    """``text`` with LaTeX special characters escaped."""
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in text)


def latex_table(table: Table) -> str:
    """A booktabs LaTeX tabular inside a table float, with the title as caption."""
    header = " & ".join(tex_escape(h) for h in (table.stub, *table.columns))
    lines = [" & ".join([tex_escape(row.label), *(c.latex() if isinstance(c, Stat) else tex_escape(c.text())
                                                   for c in row.cells)]) for row in table.rows]  # fmt: skip
    body = "".join(f"{line} \\\\\n" for line in lines)
    spec = "l" + "r" * len(table.columns)
    return (f"\\begin{{table}}\n\\centering\n\\caption{{{tex_escape(table.title)}}}\n"
            f"\\resizebox{{\\linewidth}}{{!}}{{%\n\\begin{{tabular}}{{{spec}}}\n\\toprule\n{header} \\\\\n"
            f"\\midrule\n{body}\\bottomrule\n\\end{{tabular}}}}\n\\end{{table}}\n")


def provenance(cells: pd.DataFrame) -> dict[str, str]:
    """Footer fields from the run cells: every distinct value, and the date of the newest result. The config and
    text encoder are those of the cells that gave numbers (a failed job records neither)."""
    if cells.empty:
        return {"results": "none"}
    done = cells[cells["status"] == "done"]
    measured = done if len(done) else cells
    fields = {key: ", ".join(sorted(set(cells[key]))) for key in ("commit", "split_policy")}
    fields.update({key: ", ".join(sorted(set(measured[key]))) for key in ("config_hash", "text_encoder")})
    return {**fields, "date": max(cells["date"]), "results": str(len(cells))}


def provenance_markdown(fields: dict[str, str]) -> str:
    """The provenance footer as a Markdown list."""
    names = {"commit": "commit", "config_hash": "config hash", "split_policy": "split policy",
             "text_encoder": "text encoder", "date": "date of the newest result", "results": "result cells",
             "command": "rendered by"}
    return "".join(f"- {names[key]}: {value}\n" for key, value in fields.items())
