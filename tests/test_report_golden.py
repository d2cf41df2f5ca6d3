"""Golden-file and CLI tests: the committed store renders to the committed Markdown byte for byte."""

from __future__ import annotations

from pathlib import Path

from report_fixtures import GOLDEN_MD, GOLDEN_STORE, render_golden, write_cell

from harness.cli import main


def test_golden_store_renders_to_committed_markdown_byte_for_byte(tmp_path: Path) -> None:
    path = render_golden(tmp_path)
    assert path.read_bytes() == GOLDEN_MD.read_bytes()


def test_render_is_repeatable_and_writes_every_linked_file(tmp_path: Path) -> None:
    first = render_golden(tmp_path / "a").read_text(encoding="utf-8")
    second = render_golden(tmp_path / "b").read_text(encoding="utf-8")
    assert first == second
    for link in [part.split(")")[0] for part in first.split("](")[1:]]:
        assert (tmp_path / "a" / link).is_file(), link


def test_provenance_date_comes_from_the_results_not_the_clock(tmp_path: Path) -> None:
    text = render_golden(tmp_path).read_text(encoding="utf-8")
    assert "- date of the newest result: 2026-11-22T12:00:00+00:00\n" in text
    assert "- commit: e1736a0\n" in text and "- split policy: glip\n" in text
    assert "- text encoder: minilm-l6-v2\n" in text  # the real record's (tests/report_fixtures.py)


def test_cli_report_renders_into_out(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    code = main(["report", "--suite", "odinw13", "--sweep", "golden", "--results-root", str(GOLDEN_STORE),
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out / "README.md")
    text = (out / "README.md").read_text(encoding="utf-8")
    assert "| ScaleDet-B (published) " in text and "Unseen-class rule: " in text
    assert (out / "figures" / "figure3_scaling.png").is_file()


def test_cli_report_without_published_rows(tmp_path: Path) -> None:
    write_cell(tmp_path / "store", "A", 0.5, suite="odinw13")
    assert main(["report", "--suite", "odinw13", "--results", str(tmp_path / "store"),
                 "--out", str(tmp_path / "r"), "--no-published"]) == 0  # fmt: skip
    assert "(published)" not in (tmp_path / "r" / "README.md").read_text(encoding="utf-8")


def test_cli_report_missing_store_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    code = main(["report", "--suite", "odinw13", "--results", str(tmp_path / "nope"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "nope" in err and "results directory not found" in err
