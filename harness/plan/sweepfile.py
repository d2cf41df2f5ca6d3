"""Sweep files: YAML describing suite, modes, methods, seeds, shots, resources; strict, line-level errors.

Example::

    sweep: demo-transfer        # optional; default: derived from the plan
    title: the demo's transfer  # optional; what the sweep is for, shown by `harness sweep --dry-run`
    suite: demo
    datasets: [NorthAmericaMushrooms, Packages]
    modes: [direct, finetune]
    methods: [scaledet]
    seeds: [3, 30]
    shots: [1, 3]               # fewshot only
    split_policy: glip
    upstream: [[Aquarium], [Aquarium, Packages]]   # optional: pretrain on each set, then transfer from it
    overrides: {toy.steps: 5}
    executor: slurm
    workload: toy
    resources: {partition: debug, time: 30, ntasks_per_node: 1}

A file may hold several sweeps as ``---``-separated YAML documents (:func:`load_sweep_files`); `harness sweep`
runs them in file order. Line numbers in errors are the file's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from harness.job import DEFAULT_SHOTS, JobSpec
from harness.plan.grid import plan
from harness.plan.resources import EXECUTORS, Resources
from harness.plan.stages import staged_plan
from harness.workloads import WORKLOADS
from harness.workloads.base import Workload
from scaledet.config import typed_override
from scaledet.errors import ConfigError
from scaledet.names import check_name


@dataclass(frozen=True)
class SweepFile:
    suite: str
    datasets: tuple[str, ...]
    modes: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    shots: tuple[int, ...] = DEFAULT_SHOTS
    split_policy: str = "glip"
    overrides: tuple[tuple[str, Any], ...] = ()
    executor: str = "debug"
    workload: str = "scaledet"
    resources: Resources = field(default_factory=Resources)
    sweep: str | None = None
    upstream: tuple[tuple[str, ...], ...] = ()
    title: str = ""  # what the sweep is for (e.g. the paper's table it reproduces), shown by the dry run

    @property
    def work(self) -> Workload:
        """The :class:`Workload` object the file's ``workload`` names."""
        return WORKLOADS[check_name("workload", self.workload, WORKLOADS)]

    def stages(self) -> list[list[JobSpec]]:
        """The cells in the order they must run (``harness.plan.stages``); one stage for an unstaged workload."""
        work = self.work
        if not work.staged:
            specs = plan(self.suite, self.datasets, self.modes, self.methods, self.seeds, shots=self.shots,
                         split_policy=self.split_policy, overrides=self.overrides, known_methods=work.method_names)
            work.check_specs(specs)
            return [specs]
        return staged_plan(work, self.suite, self.datasets, self.modes, self.methods, self.seeds, shots=self.shots,
                           split_policy=self.split_policy, overrides=self.overrides, upstream=self.upstream)

    def plan(self) -> list[JobSpec]:
        return [spec for stage in self.stages() for spec in stage]


_REQUIRED = ("suite", "datasets", "modes", "methods", "seeds")
_LISTS = {"datasets": str, "modes": str, "methods": str, "seeds": int, "shots": int}
_SCALARS = {"suite": str, "split_policy": str, "executor": str, "workload": str, "sweep": str, "title": str}


def load_sweep_file(path: Path) -> SweepFile:
    """Read and validate a one-document sweep file; every error names the file, the line and what was expected.

    A file of several ``---``-separated documents is an error naming it: read those with :func:`load_sweep_files`.
    """
    documents = _documents(path)
    if len(documents) > 1:
        starts = ", ".join(str(root.start_mark.line + 1) for _, root in documents)
        raise ConfigError(f"{path}: holds {len(documents)} sweep documents (starting at lines {starts}); "
                          "load_sweep_file reads one: use harness.plan.sweepfile.load_sweep_files (as `harness sweep` does)")
    [(data, root)] = documents
    return _sweep_from(path, data, root, str(path))


def load_sweep_files(path: Path) -> list[SweepFile]:
    """Every sweep of a file, in file order: one per YAML document (``---`` separated; empty ones skipped).

    Errors name the file and the line in the file (and, for a whole-document error, which document).
    """
    documents = _documents(path)
    if len(documents) == 1:
        return [_sweep_from(path, *documents[0], str(path))]
    return [_sweep_from(path, data, root, f"{path}:{root.start_mark.line + 1} (document {number})")
            for number, (data, root) in enumerate(documents, start=1)]


def _documents(path: Path) -> list[tuple[Any, yaml.Node]]:
    """(value, node) of each non-empty YAML document of ``path``; at least one, each a mapping."""
    text = Path(path).read_text()
    try:
        values = list(yaml.safe_load_all(text))
        roots = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from None
    documents = [(data, root) for data, root in zip(values, roots, strict=True)
                 if not (data is None and isinstance(root, yaml.ScalarNode))]
    if not documents:
        raise ConfigError(f"{path}: expected a mapping of sweep settings at the top level")
    for number, (data, root) in enumerate(documents, start=1):
        if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
            where = f"{path}:{root.start_mark.line + 1}" + (f" (document {number})" if len(documents) > 1 else "")
            raise ConfigError(f"{where}: expected a mapping of sweep settings at the top level")
    return documents


def _sweep_from(path: Path, data: dict[str, Any], root: yaml.MappingNode, document: str) -> SweepFile:
    """One document's sweep; ``document`` names it in whole-document errors (the file, or file:line (document n))."""
    lines = {key.value: key.start_mark.line + 1 for key, _ in root.value}
    names = [f.name for f in fields(SweepFile)]
    for key in data:
        check_name("sweep key", key, names, f"{path}:{lines.get(key, '?')}")
    for key in _REQUIRED:
        if key not in data:
            raise ConfigError(f"{document}: missing required key {key!r}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{path}:{lines.get(key, '?')}: {key}"
        values[key] = _convert(key, value, where)
    if "resources" in values:
        values["resources"] = Resources.from_dict(values["resources"], where=f"{path}:{lines['resources']}")
    check_name("executor", values.get("executor", "debug"), EXECUTORS, f"{path}:{lines.get('executor', '?')}")
    try:
        sweep = SweepFile(**values)
        sweep.plan()
    except ConfigError as error:
        raise ConfigError(f"{document}: {error}") from None
    return sweep


def _convert(key: str, value: Any, where: str) -> Any:
    if key == "upstream":
        sets = value if isinstance(value, list) else [value]
        if not sets or not all(isinstance(s, list) and s and all(isinstance(n, str) for n in s) for s in sets):
            raise ConfigError(f"{where}: expected a list of dataset lists, e.g. [[Aquarium], [Aquarium, Packages]], "
                              f"got {value!r}")
        return tuple(tuple(s) for s in sets)
    if key in _LISTS:
        kind = _LISTS[key]
        items = value if isinstance(value, list) else [value]
        bad = [item for item in items if not isinstance(item, kind) or isinstance(item, bool)]
        if bad or not items:
            raise ConfigError(f"{where}: expected a non-empty list of {kind.__name__}, got {value!r}")
        return tuple(items)
    if key in _SCALARS:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    if key == "overrides":
        return tuple(sorted((name, typed_override(name, item)) for name, item in value.items()))
    return value
