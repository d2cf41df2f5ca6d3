"""The `harness` command line: one subcommand per module in `harness.commands`.

Each command module defines ``HELP`` (one line), ``configure(parser)`` and ``run(args) -> int``.
A command whose module does not exist yet is listed as "not yet available" and exits with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import shlex
import sys
from collections.abc import Sequence
from types import ModuleType

from harness import __version__
from scaledet.errors import ScaleDetError

# name -> one-line help used when the module is not available yet
COMMANDS: dict[str, str] = {
    "ls": "list suites, datasets, classes and what is present on disk",
    "download": "download ODinW datasets (GLIP mirror or Roboflow)",
    "data": "import a local dataset export (COCO / YOLO / VOC) into the data root",
    "run": "run direct / finetune / fewshot / pretrain jobs on a suite",
    "sweep": "run a sweep described by a YAML file",
    "status": "show the state of a sweep's result cells",
    "cancel": "cancel the running jobs of a sweep",
    "report": "render Markdown tables and PNG figures from stored results",
    "doctor": "check the install, the data root and the weights",
}

EXIT_USAGE = 2


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"harness.commands.{name}")
    except ModuleNotFoundError as error:
        if error.name == f"harness.commands.{name}":
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Train and benchmark ScaleDet-style detectors on ODinW-13, from a laptop to SLURM.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, fallback_help in COMMANDS.items():
        module = _load(name)
        if module is None:
            sub = subparsers.add_parser(name, help=f"{fallback_help} (not yet available)")
            sub.set_defaults(handler=_not_available(name))
            continue
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(handler=module.run)
    return parser


def _not_available(name: str):
    def handler(_args: argparse.Namespace) -> int:
        print(f"harness {name}: not yet available in this version", file=sys.stderr)
        return EXIT_USAGE

    return handler


def _quiet_submitit_notice(record: logging.LogRecord) -> bool:
    """Drop the notice submitit's debug executor logs for every job (where its log files are)."""
    return not str(record.msg).startswith("Logging is written both to stderr/stdout")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `harness` console script."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["harness", *argv])  # named in reports' provenance footers
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_submitit_notice)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except ScaleDetError as error:
        print(f"harness {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"harness {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
