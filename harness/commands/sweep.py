"""`harness sweep FILE.yaml`: run the sweep a YAML file describes (see harness.sweepfile for the format)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands.run import add_launch_arguments, launch
from harness.sweepfile import load_sweep_file

HELP = "run a sweep described by a YAML file"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="sweep YAML file")
    add_launch_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return launch(load_sweep_file(args.file), args)
