"""`harness run`: plan jobs for a suite and run them with the debug / local / slurm executor.

Real now: planning, submission as one job array, results store, requeue, manifest. The detector's work
functions (workload ``scaledet``) are registered by the detector layer; until then only ``--workload toy``
runs.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path

import yaml

from harness.jobs import DEFAULT_SHOTS, METHODS, MODES, SPLIT_POLICIES, JobSpec
from harness.launch import EXECUTORS, Resources, submit
from harness.sweepfile import SweepFile
from scaledet.errors import ConfigError

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
    group = parser.add_argument_group("resources")
    for name, kind in (("gpus-per-node", int), ("nodes", int), ("ntasks-per-node", int), ("cpus-per-task", int),
                       ("partition", str), ("time", int), ("mem", str), ("account", str), ("qos", str),
                       ("array-parallelism", int)):
        group.add_argument(f"--{name}", type=kind, dest=f"res_{name.replace('-', '_')}")
    group.add_argument("--sbatch", action="append", default=[], metavar="FLAG=VALUE",
                       help="extra sbatch flag, e.g. --sbatch constraint=a100 (repeatable)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", required=True)
    parser.add_argument("--datasets", type=_csv(str), required=True, help="comma-separated dataset names")
    parser.add_argument("--mode", type=_csv(str), required=True, help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--method", type=_csv(str), default=("scaledet",), help=f"of {', '.join(METHODS)}")
    parser.add_argument("--seeds", type=_csv(int), default=(3,))
    parser.add_argument("--shots", type=_csv(int), default=DEFAULT_SHOTS)
    parser.add_argument("--split-policy", choices=SPLIT_POLICIES, default="glip")
    parser.add_argument("--checkpoint", help="checkpoint the transfer modes start from")
    parser.add_argument("--pretrained", help="named pretrained model the transfer modes start from")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override (repeatable)")
    parser.add_argument("--workload", default="scaledet", help="registered work functions (toy for tests)")
    parser.add_argument("--sweep", help="sweep id (default: derived from the plan)")
    add_launch_arguments(parser)


def parse_overrides(items: list[str]) -> tuple[tuple[str, object], ...]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        pairs.append((key, yaml.safe_load(value) if value else ""))
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


def default_sweep_id(suite: str, specs: list[JobSpec]) -> str:
    digest = hashlib.sha256(",".join(sorted(s.job_id for s in specs)).encode()).hexdigest()[:8]
    return f"{suite}-{digest}"


def launch(sweep: SweepFile, args: argparse.Namespace) -> int:
    """Submit the sweep's missing cells, optionally wait, print a one-line summary per state."""
    specs = sweep.plan()
    sweep_id = sweep.sweep or default_sweep_id(sweep.suite, specs)
    executor = args.executor or sweep.executor
    submission = submit(specs, sweep=sweep_id, results_root=args.results_root, runs_root=args.runs_root,
                        executor=executor, resources=resources_from_args(args, sweep.resources),
                        workload=sweep.workload, overwrite=args.overwrite, retry_failed=args.retry_failed)
    print(f"sweep {sweep_id}: {len(specs)} cells, {len(submission.jobs)} submitted ({executor}), "
          f"{len(submission.skipped)} already there")
    if args.no_wait and executor != "debug":
        return 0
    states = submission.wait()
    failed = sorted(job for job, state in states.items() if state == "failed")
    print(f"sweep {sweep_id}: {len(states) - len(failed)} done, {len(failed)} failed"
          + (f" ({', '.join(failed)}; see `harness status --sweep {sweep_id}`)" if failed else ""))
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    overrides = dict(parse_overrides(args.set))
    for key in ("checkpoint", "pretrained"):
        if getattr(args, key):
            overrides[key] = getattr(args, key)
    sweep = SweepFile(suite=args.suite, datasets=args.datasets, modes=args.mode, methods=args.method,
                      seeds=args.seeds, shots=args.shots, split_policy=args.split_policy,
                      overrides=tuple(sorted(overrides.items())), executor=args.executor or "debug",
                      workload=args.workload, sweep=args.sweep)
    return launch(sweep, args)
