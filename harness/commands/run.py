"""`harness run`: plan jobs for a suite and run them with the debug / local / slurm executor.

Workload ``scaledet`` (the default) runs the detector (``harness.workloads.scaledet.work``); ``--model hf:<repo id or
dir>`` runs an external ``transformers`` detector zero-shot instead (workload ``hf``: the model is resolved from the
Hugging Face cache or the directory now, so its revision is part of the job ids); ``toy`` is a small stand-in
for tests of the launch machinery. Transfer modes without ``--checkpoint`` first pretrain on the suite's
upstream datasets (``harness.plan.stages``: ``odinw13`` pretrains on the ``upstream`` suite's LVIS+COCO+O365+OID with
the paper's settings, after a check that their data is there); each stage is one job array. With ``scaledet`` the
report is rendered at the end (``--report-dir``, default ``reports/<suite>``). ``--dry-run`` prints the plan, the
steps and GPU-hours as `harness sweep --dry-run` does (``harness.run.dryrun``), and needs no data.
"""

from __future__ import annotations

import argparse
import logging

import yaml

from harness.catalog.datasets import get_suite
from harness.commands.launching import add_launch_arguments, launch_sweeps, options_from_args
from harness.job import DEFAULT_SHOTS, MODES, SPLIT_POLICIES
from harness.plan.sweepfile import SweepFile
from harness.run.dryrun import dry_run
from harness.run.orchestrate import sweep_batches
from harness.workloads import WORKLOADS, get_workload
from harness.workloads.methods import METHOD_NAMES
from scaledet.config import typed_override
from scaledet.errors import ConfigError
from scaledet.names import check_name

HELP = "run direct / linear / prompt / finetune / few-shot / pretrain jobs on a suite"
log = logging.getLogger(__name__)


def _csv(kind: type):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(part) for part in text.split(",") if part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
    return parse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", required=True, help="odinw13, odinw35, demo or upstream (`harness ls`)")
    parser.add_argument("--datasets", type=_csv(str), help="comma-separated dataset names (default: the suite's)")
    parser.add_argument("--mode", type=_csv(str),
                        help=f"comma-separated, of {', '.join(MODES)} (default: direct,finetune; with --model: direct)")
    parser.add_argument("--method", type=_csv(str), default=("scaledet",), help=f"of {', '.join(METHOD_NAMES)}")
    parser.add_argument("--seeds", type=_csv(int), default=(3,))
    parser.add_argument("--shots", type=_csv(int), default=DEFAULT_SHOTS)
    parser.add_argument("--split-policy", choices=SPLIT_POLICIES,
                        help="glip, test or valid (default: the suite's: glip for odinw13, test for demo)")
    parser.add_argument("--checkpoint", help="checkpoint the transfer modes start from")
    parser.add_argument("--pretrained", help="named pretrained model the transfer modes start from")
    parser.add_argument("--model", metavar="hf:REPO_OR_DIR",
                        help="score an external zero-shot detector of transformers (OWL-ViT, OWLv2, Grounding DINO, "
                             "MM-Grounding-DINO/LLMDet, OmDet-Turbo) from the Hugging Face cache or a local directory")
    parser.add_argument("--revision", help="with --model: the cached revision (commit hash; default: main)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override (repeatable)")
    parser.add_argument("--workload", default="scaledet", choices=sorted(WORKLOADS),
                        help="scaledet (the detector), hf (set by --model) or toy (a small stand-in for tests)")
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


def _external_model(args: argparse.Namespace, overrides: dict[str, object]) -> None:
    """``--model``: the workload ``hf``, its one method, and the model resolved now (id and revision in the
    overrides, hence in the job ids)."""
    from harness.workloads.hf.models import model_name, resolve

    ref = resolve(model_name(args.model), args.revision, allow_download=False)
    log.info("model %s: %s", ref.label, ref.path)
    overrides.update(hf_model=ref.name, hf_revision=ref.revision)
    args.workload, args.method = "hf", ("hf",)
    args.mode = args.mode or ("direct",)


def run(args: argparse.Namespace) -> int:
    overrides = dict(parse_overrides(args.set))
    if args.model:
        _external_model(args, overrides)
    elif args.revision:
        raise ConfigError("--revision goes with --model")
    args.mode = args.mode or ("direct", "finetune")
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
    if args.dry_run:
        options = options_from_args(args, sweep)
        return dry_run([("harness run", sweep)], [sweep_batches(sweep, options.resources, options.executor)],
                       args.results_root, args.executor)
    return launch_sweeps([("", sweep)], args)
