"""`harness ls`: suites, datasets, classes, what is on disk under the data root, and unseen classes.

- ``harness ls``: every suite, every ODinW dataset with its classes and whether it is on disk.
- ``harness ls --suite odinw13`` (or ``odinw35``): the suite's datasets, the split each is scored on, present /
  missing per split.
- ``harness ls --dataset Aquarium``: classes with ids, splits with the paper's counts, licence, citation,
  Roboflow coordinates (``--suite demo`` for the embedded copy; ``--dataset coco`` for an upstream list).
- ``harness ls --unseen [--suite odinw13] [--upstream lvis+coco] [--rule names|paper|text]``: the unseen
  classes under a rule of :mod:`harness.catalog.unseen` (upstream default: the suite's own, else the four).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from harness.catalog import datasets as registry
from harness.catalog import unseen
from harness.catalog.upstream_labels import UPSTREAM_ORDER, upstream_classes
from scaledet.errors import ConfigError

HELP = "list suites, datasets, classes and what is present on disk"
_CLASS_WIDTH = 60


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", help="list one suite's datasets and their splits on disk")
    parser.add_argument("--dataset", help="show one dataset: classes, splits, counts, licence, citation")
    parser.add_argument("--root", type=Path, help=f"data root (default: ${registry.DATA_ENV}, else the user cache)")
    parser.add_argument("--unseen", action="store_true", help="list the suite's classes unseen upstream")
    parser.add_argument("--upstream", action="append", metavar="NAMES",
                        help="upstream datasets for --unseen: lvis, coco, objects365, openimages (L, C, O365, "
                             "OID) or ODinW datasets of the suite; 'lvis+coco' or repeat the option")
    parser.add_argument("--rule", default="names", help="unseen rule: names (default), paper or text")
    parser.add_argument("--lvis-synonyms", action="store_true", help="rules names/text: count LVIS synonyms")
    parser.add_argument("--threshold", type=float,
                        help=f"rule text: cosine threshold (default {unseen.DEFAULT_THRESHOLD})")


def run(args: argparse.Namespace) -> int:
    if args.unseen:
        return _unseen(args)
    if args.upstream or args.threshold is not None or args.lvis_synonyms or args.rule != "names":
        raise ConfigError("--upstream, --rule, --threshold and --lvis-synonyms go with --unseen")
    if args.dataset:
        return _dataset(args.dataset, args.suite or "odinw13", args.root)
    if args.suite:
        return _suite(args.suite, args.root)
    return _overview(args.root)


def root_line(root: Path | None) -> str:
    """``data root: PATH (from ...)``: which setting chose the root."""
    if root is not None:
        return f"data root: {root} (from --root)"
    source = f"${registry.DATA_ENV}" if os.environ.get(registry.DATA_ENV) else f"default; set ${registry.DATA_ENV}"
    return f"data root: {registry.data_root()} ({source})"


def split_state(spec: registry.DatasetSpec, split: str, root: Path | None) -> str:
    """``present`` / ``missing`` for a split of ``spec`` (its annotation file), blank if it has no such split."""
    if split not in spec.split_files:
        return ""
    return "present" if spec.annotation_path(split, root).is_file() else "missing"


def disk_state(spec: registry.DatasetSpec, root: Path | None) -> str:
    states = [split_state(spec, split, root) for split in spec.splits]
    present = states.count("present")
    if present == len(states):
        return "present (embedded)" if spec.embedded else "present"
    return "missing" if present == 0 else f"partial ({present}/{len(states)} splits)"


def _overview(root: Path | None) -> int:
    print(root_line(root))
    print()
    rows = [[s.name, len(s.datasets), "+".join(s.upstream) or (f"{s.pretrain_suite}'s" if s.pretrain_suite
                                                                else "(checkpoint given)"), s.description]
            for s in registry.SUITES.values()]
    print(tabulate(rows, headers=["suite", "datasets", "upstream", "description"]))
    print()
    suites_of = {name: [s.name for s in registry.SUITES.values() if name in registry.suite_datasets(s.name)]
                 for name in registry.DATASETS}
    rows = [[spec.name, spec.paper_name, len(spec.categories), ", ".join(spec.class_names), ", ".join(spec.splits),
             disk_state(spec, root), ", ".join(suites_of[spec.name])] for spec in registry.DATASETS.values()]
    print(tabulate(rows, headers=["dataset", "paper", "#", "classes", "splits", "on disk", "suites"],
                   maxcolwidths=[None, None, None, _CLASS_WIDTH, None, None, None]))
    print()
    print("upstream label spaces: " + ", ".join(f"{n} ({len(upstream_classes(n))} classes)" for n in UPSTREAM_ORDER))
    print("the demo suite uses copies embedded in the package: `harness ls --suite demo`")
    return 0


def _suite(name: str, root: Path | None) -> int:
    suite = registry.get_suite(name)
    print(f"suite {suite.name}: {suite.description}")
    print(root_line(root))
    print()
    if suite.label_spaces_only:
        return _upstream_suite(suite, root)
    splits = [s for s in registry.SPLITS if any(s in registry.get_dataset(d, name).split_files
                                                for d in registry.suite_datasets(name))]
    rows, present = [], 0
    for dataset in registry.suite_datasets(name):
        spec = registry.get_dataset(dataset, name)
        role = ("transfer+upstream" if dataset in suite.upstream else "transfer") if dataset in suite.datasets \
            else "upstream"
        rows.append([spec.name, role, ", ".join(spec.class_names), spec.eval_split(suite.split_policy),
                     *(split_state(spec, s, root) for s in splits)])
        present += spec.is_present(root)
    print(tabulate(rows, headers=["dataset", "role", "classes", f"scored on ({suite.split_policy})", *splits],
                   maxcolwidths=[None, None, _CLASS_WIDTH, None, *([None] * len(splits))]))
    print()
    total = len(rows)
    print(f"{present} of {total} datasets present" + ("" if present == total else
          f"; get the others with `harness download --suite {name} --only NAME` or "
          "`harness data import NAME --from PATH`"))
    return 0


def _upstream_suite(suite: registry.Suite, root: Path | None) -> int:
    from harness.catalog import upstream as upstream_data

    rows = []
    for name in suite.datasets:
        spec = upstream_data.get_spec(name)
        states = [f"{split}: {upstream_state(name, split, root)}" for split in spec.splits]
        rows.append([name, spec.title, len(upstream_classes(name)), ", ".join(states)])
    print(tabulate(rows, headers=["dataset", "title", "classes", "annotations on disk"]))
    print()
    print("upstream data is read where it lies (docs/upstream.md); set $SCALEDET_<NAME>_ROOT per dataset")
    return 0


def upstream_roots(root: Path | None) -> dict[str, Path] | None:
    """``--root`` as per-dataset roots for :mod:`harness.catalog.upstream`, leaving ``$SCALEDET_<NAME>_ROOT`` first."""
    from harness.catalog import upstream as upstream_data

    if root is None:
        return None
    return {n: root / n for n, spec in upstream_data.SPECS.items() if not os.environ.get(spec.env_var)}


def upstream_state(name: str, split: str, root: Path | None) -> str:
    from harness.catalog import upstream as upstream_data

    return "present" if upstream_data.has_split(name, split, upstream_roots(root)) else "missing"


def _dataset(name: str, suite: str, root: Path | None) -> int:
    if name in UPSTREAM_ORDER:
        return _upstream_dataset(name, root)
    spec = registry.get_dataset(name, suite)
    suites = [s.name for s in registry.SUITES.values() if spec.name in registry.suite_datasets(s.name)]
    facts = [
        ["dataset", spec.name], ["paper name", spec.paper_name or "-"], ["suites", ", ".join(suites)],
        ["folder", str(spec.folder(root)) + (" (embedded in the package)" if spec.embedded else "")],
        ["licence", spec.licence], ["citation", spec.citation],
        ["roboflow", spec.roboflow or "not recorded (pass workspace/project/version to the download)"],
        ["GLIP eval split", spec.glip_eval_split],
        ["GLIP schedule", f"{spec.max_epoch} epochs over {spec.general_copy} copies of train (GENERAL_COPY)"],
    ]
    if not spec.names_checked:
        facts.append(["classes", "GLIP's config names (OVERRIDE_CATEGORY); reading checks the json's ids"])
    if spec.root_ids:
        facts.append(["root class ids", ", ".join(map(str, spec.root_ids)) + " (Roboflow's root: not a class)"])
    print(tabulate(facts, tablefmt="plain", maxcolwidths=[None, 100]))
    print()
    overrides = dict(zip(spec.class_names, spec.prompt_overrides))
    rows = [[cid, cname, overrides.get(cname, "")] for cid, cname in spec.categories]
    print(tabulate(rows, headers=["id", "class", "GLIP prompt override (off by default)"]))
    print()
    shipped = spec.embedded and dict(spec.images) != dict(registry.DATASETS[spec.name].images)
    label = "images (demo, as shipped)" if shipped else "images (GLIP Table 9)"
    rows = [[split, spec.split_files[split], _count(spec.images.get(split)), _count(spec.boxes.get(split)),
             split_state(spec, split, root)] for split in spec.splits]
    print(tabulate(rows, headers=["split", "annotation file", label, "boxes", "on disk"]))
    return 0


def _upstream_dataset(name: str, root: Path | None) -> int:
    from harness.catalog import upstream as upstream_data

    spec = upstream_data.get_spec(name)
    classes = upstream_classes(name)
    print(f"{spec.title} ({name}, paper: {spec.short}): {len(classes)} classes; data read where it lies "
          f"(docs/upstream.md)")
    print(", ".join(f"{split}: {upstream_state(name, split, root)}" for split in spec.splits))
    print()
    print(tabulate([[c.original_id, c.name] for c in classes], headers=["id", "class"]))
    return 0


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def parse_upstream(values: Sequence[str] | None) -> list[str]:
    """``--upstream`` values: each may hold several names joined by '+' or ','."""
    return [part.strip() for value in values or () for part in value.replace(",", "+").split("+") if part.strip()]


def _unseen(args: argparse.Namespace) -> int:
    suite = registry.get_suite(args.suite or "odinw13")
    unseen.check_rule(args.rule)
    if args.threshold is not None and args.rule != "text":
        raise ConfigError(f"--threshold applies to --rule text only (got --rule {args.rule})")
    if args.lvis_synonyms and args.rule == "paper":
        raise ConfigError("--lvis-synonyms applies to --rule names or text, not paper (a fixed list)")
    upstream = parse_upstream(args.upstream) or list(suite.upstream or UPSTREAM_ORDER)
    entries = unseen.resolve_upstream(suite.name, upstream)
    threshold = unseen.check_threshold(unseen.DEFAULT_THRESHOLD if args.threshold is None else args.threshold)
    datasets_of: dict[str, list[str]] = {}
    for dataset in suite.datasets:
        for cname in registry.class_names(dataset, suite.name):
            datasets_of.setdefault(cname, []).append(dataset)
    if args.rule == "text":
        nearest = unseen.nearest_upstream_labels(suite.name, entries, lvis_synonyms=args.lvis_synonyms)
        rows = [[n.name, ", ".join(datasets_of[n.name]), n.label, n.upstream, f"{n.cosine:.3f}"]
                for n in nearest if n.cosine < threshold]
        headers = ["class", "dataset", "nearest upstream label", "from", "cosine"]
    else:
        names = unseen.unseen_classes(suite.name, entries, args.rule, lvis_synonyms=args.lvis_synonyms)
        rows = [[n, ", ".join(datasets_of[n])] for n in names]
        headers = ["class", "dataset"]
    print(f"suite {suite.name}, upstream {'+'.join(entries) or '(none)'}")
    detail = f"; threshold {threshold}" if args.rule == "text" else ""
    detail += "; LVIS synonyms counted" if args.lvis_synonyms else ""
    print(f"rule {args.rule}: {unseen.RULES[args.rule]}{detail}")
    print()
    print(tabulate(rows, headers=headers) if rows else "(no unseen classes)")
    print()
    print(f"{len(rows)} of {len(datasets_of)} classes unseen (rule {args.rule})")
    return 0
