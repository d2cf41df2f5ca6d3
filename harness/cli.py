"""The `harness` command line: one subcommand per module in `harness.commands`.

Each command module defines ``HELP`` (one line), ``configure(parser)`` and ``run(args) -> int``; adding a command
is one module and its name in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from types import ModuleType

from harness import __version__
from harness.commands import cancel, data, doctor, download, ls, report, run, status, sweep
from scaledet.errors import ScaleDetError

# in the order `harness --help` lists them
COMMANDS: dict[str, ModuleType] = {
    "ls": ls, "download": download, "data": data, "run": run, "sweep": sweep, "status": status, "cancel": cancel,
    "report": report, "doctor": doctor,
}

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Train and benchmark ScaleDet-style detectors on ODinW-13, from a laptop to SLURM.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(handler=module.run)
    return parser


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
