"""Staged plans: pretrain jobs first, then the transfer jobs that start from their checkpoints.

A sweep whose transfer cells name no starting checkpoint (``checkpoint``/``pretrained``/``pretrain_job``
overrides) pretrains on its upstream sets: the sweep file's ``upstream`` list, else the upstream datasets of
the suite's pretrain suite (the suite itself, or its ``pretrain_suite``: ``odinw13`` pretrains on the
``upstream`` suite's LVIS+COCO+O365+OID, as the paper does, with that suite's pretrain settings). A method that
is not ``joint``, e.g. the single-dataset ``baseline``, takes each upstream dataset alone. Each transfer cell
then carries ``upstream`` (``A+B``, for reports) and ``pretrain_job`` (the pretrain cell's job id). Pretraining
uses the sweep's first seed; the transfer cells use every seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.catalog import datasets as registry
from harness.job import JobSpec, normalise_overrides
from harness.plan.grid import plan
from harness.plan.suite_settings import suite_overrides
from harness.workloads.base import Workload
from harness.workloads.methods import METHODS
from scaledet.errors import ConfigError
from scaledet.names import check_name

START_KEYS = ("checkpoint", "pretrained", "pretrain_job")


def pretrain_suite(suite: str) -> str:
    """The suite whose datasets the pretrain cells of ``suite``'s transfer sweeps train on (and are planned in)."""
    return registry.get_suite(suite).pretrain_suite or suite


def upstream_sets(suite: str, methods: Sequence[str], given: Sequence[Sequence[str]] = ()) -> dict[str, list[tuple[str, ...]]]:
    """method -> the upstream dataset sets it pretrains on (in the pretrain suite's upstream order)."""
    record = registry.get_suite(pretrain_suite(suite))
    sets = [tuple(s) for s in given] or [record.upstream]
    if not any(sets):
        raise ConfigError(f"suite '{suite}' has no upstream datasets of its own: transfer jobs need --checkpoint "
                          "PATH (or a sweep file 'upstream' list)")
    out = {}
    joint = {m.name: m.joint for m in METHODS}
    for method in methods:
        if not joint.get(method, True):
            out[method] = [s for s in sets if len(s) == 1] or [(n,) for n in dict.fromkeys(n for s in sets for n in s)]
        else:
            out[method] = sets
    return out


def staged_plan(workload: Workload, suite: str, datasets: Sequence[str], modes: Sequence[str],
                methods: Sequence[str], seeds: Sequence[int], *, shots: Sequence[int], split_policy: str,
                overrides: Sequence[tuple[str, Any]], upstream: Sequence[Sequence[str]] = ()) -> list[list[JobSpec]]:
    """The sweep's cells in stages: ``[pretrain cells, transfer cells]``, or one stage when no pretraining."""
    record, home = registry.get_suite(suite), registry.get_suite(pretrain_suite(suite))
    for name in datasets:
        check_name(f"dataset of suite '{suite}'", name, record.datasets + record.upstream)
    for name in (n for s in upstream for n in s):
        check_name(f"upstream dataset of suite '{home.name}'", name, home.datasets + home.upstream)
    pairs = dict(normalise_overrides(overrides))
    transfer_modes = [m for m in modes if m != "pretrain"]
    explicit = _plan(suite, datasets, ["pretrain"], methods, seeds[:1], split_policy, pairs) if "pretrain" in modes else []
    if not transfer_modes:
        workload.check_specs(explicit)
        return [explicit]
    if any(pairs.get(k) for k in START_KEYS):
        if upstream:
            raise ConfigError("a sweep gives either a starting checkpoint or 'upstream' sets to pretrain on, not both")
        transfer = _plan(suite, datasets, transfer_modes, methods, seeds, split_policy, pairs, shots)
        workload.check_specs(explicit + transfer)
        return [s for s in (explicit, transfer) if s]
    pretrain, transfer = list(explicit), []
    # pretrain cells of another suite are scored on its own splits: they take its split policy
    home_policy = split_policy if home.name == suite else home.split_policy
    for method, sets in upstream_sets(suite, methods, upstream).items():
        for names in sets:
            (job,) = _plan(home.name, names, ["pretrain"], [method], seeds[:1], home_policy, pairs)
            pretrain.append(job)
            start = {**pairs, **start_overrides(names, job.job_id)}
            transfer += _plan(suite, datasets, transfer_modes, [method], seeds, split_policy, start, shots)
    stages = [list(dict.fromkeys(pretrain)), transfer]
    workload.check_specs(spec for stage in stages for spec in stage)
    return stages


def start_overrides(upstream: Sequence[str], pretrain_job: str) -> dict[str, str]:
    """What a transfer cell that starts from a pretrain cell of the same sweep carries: the upstream datasets
    (``A+B``, read by reports) and the pretrain cell's job id (resolved to its checkpoint by the workload)."""
    return {"upstream": "+".join(upstream), "pretrain_job": pretrain_job}


def _plan(suite: str, datasets: Sequence[str], modes: Sequence[str], methods: Sequence[str], seeds: Sequence[int],
          split_policy: str, overrides: dict[str, Any], shots: Sequence[int] = ()) -> list[JobSpec]:
    """``harness.job.plan`` per mode, each mode's suite settings under the given overrides."""
    return [spec for mode in modes for spec in plan(
        suite, datasets, [mode], methods, seeds, shots=shots, split_policy=split_policy,
        overrides={**suite_overrides(suite, mode), **overrides})]
