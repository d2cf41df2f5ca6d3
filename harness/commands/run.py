"""`harness run`: plan jobs for a suite and run them with the debug / local / slurm executor.

Workload ``scaledet`` (the default) runs the detector (``harness.workloads.scaledet.work``); ``toy`` is a small stand-in
for tests of the launch machinery. Transfer modes without ``--checkpoint`` first pretrain on the suite's
upstream datasets (``harness.plan.stages``); each stage is one job array. With ``scaledet`` the report is rendered
at the end (``--report-dir``, default ``reports/<suite>``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

from harness.catalog.datasets import get_suite
from harness.job import DEFAULT_SHOTS, MODES, SPLIT_POLICIES
from harness.plan.resources import EXECUTORS, Resources
from harness.plan.sweepfile import SweepFile
from harness.run.orchestrate import LaunchOptions, launch
from harness.workloads import WORKLOADS, get_workload
from harness.workloads.methods import METHOD_NAMES
from scaledet.config import typed_override
from scaledet.errors import ConfigError
from scaledet.names import check_name

HELP = "run direct / finetune / fewshot / pretrain jobs on a suite"
log = logging.getLogger(__name__)


def _csv(kind: type):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(part) for part in text.split(",") if part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
    return parse


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `sweep`: where things go, which executor, what to re-run."""
    parser.add_argument("--executor", choices=EXECUTORS, help="debug (in-process), local or slurm")
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--runs-root", type=Path, default=Path("runs"))
    parser.add_argument("--overwrite", action="store_true", help="recompute cells that already have results")
    parser.add_argument("--retry-failed", action="store_true", help="recompute cells with failure records")
    parser.add_argument("--no-wait", action="store_true", help="return after submitting (slurm/local)")
    parser.add_argument("--report-dir", type=Path, help="where the report goes (default: reports/<suite>)")
    parser.add_argument("--no-report", action="store_true", help="do not render the report at the end")
    group = parser.add_argument_group("resources")
    for name, kind in (("gpus-per-node", int), ("nodes", int), ("ntasks-per-node", int), ("cpus-per-task", int),
                       ("partition", str), ("time", int), ("mem", str), ("account", str), ("qos", str),
                       ("array-parallelism", int)):
        group.add_argument(f"--{name}", type=kind, dest=f"res_{name.replace('-', '_')}")
    group.add_argument("--sbatch", action="append", default=[], metavar="FLAG=VALUE",
                       help="extra sbatch flag, e.g. --sbatch constraint=a100 (repeatable)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", required=True, help="odinw13, demo or upstream (`harness ls`)")
    parser.add_argument("--datasets", type=_csv(str), help="comma-separated dataset names (default: the suite's)")
    parser.add_argument("--mode", type=_csv(str), default=("direct", "finetune"),
                        help=f"comma-separated, of {', '.join(MODES)} (default: direct,finetune)")
    parser.add_argument("--method", type=_csv(str), default=("scaledet",), help=f"of {', '.join(METHOD_NAMES)}")
    parser.add_argument("--seeds", type=_csv(int), default=(3,))
    parser.add_argument("--shots", type=_csv(int), default=DEFAULT_SHOTS)
    parser.add_argument("--split-policy", choices=SPLIT_POLICIES,
                        help="glip, test or valid (default: the suite's: glip for odinw13, test for demo)")
    parser.add_argument("--checkpoint", help="checkpoint the transfer modes start from")
    parser.add_argument("--pretrained", help="named pretrained model the transfer modes start from")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override (repeatable)")
    parser.add_argument("--workload", default="scaledet", choices=sorted(WORKLOADS),
                        help="scaledet (the detector) or toy (a small stand-in for tests)")
    parser.add_argument("--sweep", help="sweep id (default: derived from the plan)")
    add_launch_arguments(parser)


def parse_overrides(items: list[str]) -> tuple[tuple[str, object], ...]:
    """``--set KEY=VALUE`` items as typed (key, value) pairs: YAML values in the config field's own type
    (``scaledet.config.typed_override``: ``[0.8, 1.2]`` becomes a tuple once, here, and stays one)."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            parsed = yaml.safe_load(value) if value else ""
        except yaml.YAMLError as error:
            raise ConfigError(f"--set {item!r}: cannot parse the value: {error}") from None
        pairs.append((key, typed_override(key, parsed)))
    return tuple(pairs)


def resources_from_args(args: argparse.Namespace, base: Resources | None = None) -> Resources:
    base = base or Resources()
    values = {k[4:]: v for k, v in vars(args).items() if k.startswith("res_") and v is not None}
    extra = dict(base.extra)
    for flag in args.sbatch:
        key, sep, value = flag.partition("=")
        if not sep:
            raise ConfigError(f"--sbatch {flag!r}: expected FLAG=VALUE")
        extra[key.lstrip("-")] = value
    merged = {**{f: getattr(base, f) for f in base.__dataclass_fields__}, **values, "extra": extra}
    return Resources.from_dict(merged)


def options_from_args(args: argparse.Namespace, sweep: SweepFile) -> LaunchOptions:
    return LaunchOptions(results_root=args.results_root, runs_root=args.runs_root, executor=args.executor,
                         resources=resources_from_args(args, sweep.resources), overwrite=args.overwrite,
                         retry_failed=args.retry_failed, no_wait=args.no_wait)


def launch_and_report(sweep: SweepFile, args: argparse.Namespace) -> int:
    """Run the sweep (``harness.run.orchestrate``), then render its report when its workload has one."""
    outcome = launch(sweep, options_from_args(args, sweep))
    if outcome.pending:
        return 0
    if sweep.work.reports and not args.no_report:
        from harness.reporting import render_report

        out = args.report_dir or Path("reports") / sweep.suite
        path = render_report(args.results_root, sweep.suite, out, outcome.sweep_id,
                             command=getattr(args, "command_line", None))
        print(f"report: {path}")
    return 1 if outcome.failed else 0


def run(args: argparse.Namespace) -> int:
    overrides = dict(parse_overrides(args.set))
    for key in ("checkpoint", "pretrained"):
        if getattr(args, key):
            overrides[key] = getattr(args, key)
    datasets = args.datasets
    if get_workload(args.workload).uses_registry:
        suite = get_suite(args.suite)
        for name in datasets or ():
            check_name(f"dataset of suite '{args.suite}'", name, suite.datasets + suite.upstream)
        datasets = datasets or (suite.upstream if set(args.mode) == {"pretrain"} else suite.datasets)
        args.split_policy = args.split_policy or suite.split_policy
    if not datasets:
        raise ConfigError("--datasets is required with this workload")
    sweep = SweepFile(suite=args.suite, datasets=tuple(datasets), modes=args.mode, methods=args.method,
                      seeds=args.seeds, shots=args.shots, split_policy=args.split_policy or "glip",
                      overrides=tuple(sorted(overrides.items())), executor=args.executor or "debug",
                      workload=args.workload, sweep=args.sweep)
    return launch_and_report(sweep, args)
