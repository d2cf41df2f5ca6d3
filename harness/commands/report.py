"""`harness report`: render Markdown tables and PNG figures from the results store."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.reporting import render_report

HELP = "render Markdown tables and PNG figures from stored results"


def configure(parser: argparse.ArgumentParser) -> None:
    """Register the report options."""
    parser.add_argument("--suite", required=True, help="suite to report, e.g. odinw13")
    parser.add_argument("--sweep", default=None, help="only results of this sweep id")
    parser.add_argument("--results-root", "--results", dest="results_root", type=Path, default=Path("results"),
                        help="results store directory, as given to `harness run` (default: ./results)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: reports/<suite>)")
    parser.add_argument("--no-published", dest="published", action="store_false",
                        help="leave out the published rows (ScaleDet-R/T/B, GLIP-T, Detic …)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Render the report and print the path of its Markdown file."""
    out = args.out or Path("reports") / args.suite
    path = render_report(args.results_root, args.suite, out, args.sweep, published=args.published,
                         command=args.command_line)
    print(path)
    return 0
