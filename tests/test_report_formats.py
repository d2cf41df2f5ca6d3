"""Markdown, CSV and LaTeX writers and the provenance footer."""

from __future__ import annotations

import csv
import io

import pandas as pd

from harness.reporting.formats import csv_table, latex_table, markdown_table, provenance, tex_escape
from harness.reporting.model import Marked, Missing, Note, Row, Stat, Table

TABLE = Table("t", "A_title & more", ("A", "mean"),
              (Row("m [X]", (Stat(45.25, 1.0, 2), Missing("missing")), "m", "X"),
               Row("GLIP-T (published)", (Stat(12.5, 0.0, 1), Stat(30.0, 0.0, 1)), "GLIP-T", "", True)),
              footnotes=("first note", "second note"))  # fmt: skip


def test_markdown_is_github_style_with_numbered_footnotes() -> None:
    text = markdown_table(TABLE)
    lines = text.splitlines()
    assert lines[0].startswith("| method") and set(lines[1]) <= {"|", "-"}
    assert "| 45.2 ± 1.0 " in lines[2] and "| missing " in lines[2]
    assert "| 12.5 " in lines[3] and "±" not in lines[3]
    assert lines[-2:] == ["1. first note", "2. second note"]


def test_markdown_of_an_empty_table_says_so() -> None:
    empty = Table("e", "E", ("A",), ())
    assert markdown_table(empty) == "_No results for this table._\n"


def test_csv_is_long_with_numbers_and_missing_reason() -> None:
    rows = list(csv.DictReader(io.StringIO(csv_table(TABLE))))
    assert len(rows) == 4
    assert rows[0] == {"method": "m [X]", "published": "False", "column": "A", "mean": "45.2500",
                       "std": "1.0000", "n": "2", "missing": "", "mark": ""}  # fmt: skip
    assert rows[1]["missing"] == "missing" and rows[1]["mean"] == ""
    assert rows[3]["published"] == "True"


def test_marked_and_text_cells_keep_their_mark_and_text_in_every_format() -> None:
    """The leaderboard's cells: a value with a leakage mark, and a text cell (a row's protocol)."""
    table = Table("t", "T", ("A", "protocol"), (Row("m", (Marked(12.5, 0.0, 1, "†"), Note("split glip"))),))
    assert "| 12.5† | split glip |" in markdown_table(table)
    rows = list(csv.DictReader(io.StringIO(csv_table(table))))
    assert rows[0]["mean"] == "12.5000" and rows[0]["mark"] == "†"
    assert rows[1]["mean"] == "" and rows[1]["missing"] == "split glip"
    assert "12.5$^\\dagger$ & split glip" in latex_table(table)


def test_latex_is_booktabs_with_pm_and_escaped_text() -> None:
    tex = latex_table(TABLE)
    assert "\\begin{tabular}{lrr}" in tex and "\\toprule" in tex and "\\bottomrule" in tex
    assert "\\caption{A\\_title \\& more}" in tex
    assert "m [X] & 45.2 $\\pm$ 1.0 & missing \\\\" in tex
    assert tex_escape("50%_a#") == "50\\%\\_a\\#"


def test_provenance_lists_every_value_and_the_newest_result_date() -> None:
    cells = pd.DataFrame({"commit": ["b", "a", "b"], "config_hash": ["h", "h", "h"],
                          "split_policy": ["glip"] * 3, "text_encoder": ["minilm", "clip", "clip"],
                          "status": ["done"] * 3, "date": ["2026-01-02", "2026-03-01", "2026-02-01"]})  # fmt: skip
    assert provenance(cells) == {"commit": "a, b", "config_hash": "h", "split_policy": "glip",
                                 "text_encoder": "clip, minilm", "date": "2026-03-01", "results": "3"}  # fmt: skip
    # a failed job records no config or encoder: the footer names those of the cells that gave numbers
    failed = pd.concat([cells, pd.DataFrame({"commit": ["c"], "config_hash": ["empty"], "split_policy": ["glip"],
                                             "text_encoder": ["unknown"], "status": ["failed"],
                                             "date": ["2026-04-01"]})])
    assert provenance(failed) == {"commit": "a, b, c", "config_hash": "h", "split_policy": "glip",
                                  "text_encoder": "clip, minilm", "date": "2026-04-01", "results": "4"}
    assert provenance(cells.iloc[:0]) == {"results": "none"}
