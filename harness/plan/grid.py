"""The results grid: expand suite x modes x methods x seeds (x shots) into job specs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from harness.job import DEFAULT_SHOTS, FEWSHOT_MODES, MODES, JobSpec, OverrideValue, normalise_overrides
from harness.workloads.methods import METHOD_NAMES
from scaledet.errors import ConfigError
from scaledet.names import check_name


def plan(
    suite: str,
    datasets: Sequence[str],
    modes: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    *,
    shots: Sequence[int] = DEFAULT_SHOTS,
    split_policy: str = "glip",
    overrides: Mapping[str, OverrideValue] | Iterable[tuple[str, OverrideValue]] = (),
    known_methods: Sequence[str] = METHOD_NAMES,
) -> list[JobSpec]:
    """Expand suite × modes × methods × seeds (× shots) into job specs, in a stable order, no duplicates;
    ``known_methods``: the workload's (default ScaleDet's)."""
    for mode in modes:
        check_name("mode", mode, MODES)
    for method in methods:
        check_name("method", method, known_methods)
    if not datasets:
        raise ConfigError(f"suite {suite!r}: no datasets to plan for")
    pairs = normalise_overrides(overrides)
    specs: list[JobSpec] = []
    for mode in modes:
        targets = ["+".join(sorted(datasets))] if mode == "pretrain" else list(datasets)
        shot_values: Sequence[int | None] = shots if mode in FEWSHOT_MODES else (None,)
        for dataset in targets:
            for method in methods:
                for seed in seeds:
                    for k in shot_values:
                        specs.append(JobSpec(suite, dataset, mode, method, int(seed), k, split_policy, pairs))
    return list(dict.fromkeys(specs))
