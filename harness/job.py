"""Job specs: one cell of the results grid each.

A :class:`JobSpec` is one cell of the results grid. Its ``job_id`` is the first 12 hex digits of the
SHA-256 of its canonical JSON (sorted keys, no spaces), so the same cell always has the same id, on any
machine, and a re-run finds its result file.

Methods are checked against the workload's :class:`~harness.workloads.base.Method` records when a sweep is
planned (``harness.plan.grid.plan``), not here: a spec is plain data.

Expansion rules of ``harness.plan.grid.plan``:

- ``direct`` / ``finetune``: one job per dataset × method × seed (``shots`` is ``None``).
- ``fewshot``: one job per dataset × method × seed × shots (k shots per class).
- ``linear`` / ``prompt``: like ``finetune``, training only the box classifier's projection and bias (linear
  probing) or only the target's label embeddings (prompt tuning); ``linear-fewshot`` / ``prompt-fewshot`` like
  ``fewshot`` (:data:`TUNING_OF_MODE` says what each transfer mode trains).
- ``pretrain``: one job per method × seed for the *whole suite* (it trains on all the suite's datasets
  jointly, producing the checkpoint the other modes start from). Its ``dataset`` field is the suite's
  datasets sorted and joined by ``+``, so changing the suite's membership changes the job id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from scaledet.errors import ConfigError
from scaledet.names import check_name

# transfer mode -> what it trains (``scaledet.tuning``: GLIP's full-model tuning, linear probing, prompt tuning)
TUNING_OF_MODE: dict[str, str] = {"finetune": "full", "fewshot": "full", "linear": "linear",
                                  "linear-fewshot": "linear", "prompt": "prompt", "prompt-fewshot": "prompt"}
FEWSHOT_MODES: tuple[str, ...] = ("fewshot", "linear-fewshot", "prompt-fewshot")  # on k-shot subsets
TRAINED_TRANSFER_MODES: tuple[str, ...] = tuple(TUNING_OF_MODE)
MODES: tuple[str, ...] = ("direct", *TRAINED_TRANSFER_MODES, "pretrain")
SPLIT_POLICIES: tuple[str, ...] = ("glip", "test", "valid")
DEFAULT_SHOTS: tuple[int, ...] = (1, 3, 5, 10)
Scalar = str | int | float | bool | None
OverrideValue = Scalar | tuple[Scalar, ...]  # typed where overrides enter (scaledet.config.typed_override)


@dataclass(frozen=True)
class JobSpec:
    """One result cell: what to run, on what, with which seed and overrides."""

    suite: str
    dataset: str
    mode: str
    method: str
    seed: int
    shots: int | None = None
    split_policy: str = "glip"
    overrides: tuple[tuple[str, OverrideValue], ...] = ()

    def __post_init__(self) -> None:
        check_name("mode", self.mode, MODES)
        check_name("split policy", self.split_policy, SPLIT_POLICIES)
        if (self.mode in FEWSHOT_MODES) != (self.shots is not None):
            raise ConfigError(f"shots must be set for the modes {', '.join(FEWSHOT_MODES)} only "
                              f"(mode={self.mode!r}, shots={self.shots})")
        object.__setattr__(self, "overrides", normalise_overrides(self.overrides))

    def canonical_json(self) -> str:
        data = asdict(self)
        data["overrides"] = [list(pair) for pair in self.overrides]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @property
    def job_id(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:12]

    def override(self, key: str, default: Any = None) -> Any:
        return dict(self.overrides).get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.canonical_json())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "job spec") -> JobSpec:
        fields = set(cls.__dataclass_fields__)
        for key in data:
            check_name("job spec field", key, fields, where)
        missing = sorted(fields - set(data) - {"shots", "split_policy", "overrides"})
        if missing:
            raise ConfigError(f"{where}: missing job spec field(s) {', '.join(missing)}")
        values = dict(data)
        values["overrides"] = tuple(tuple(pair) for pair in values.get("overrides", ()))
        return cls(**values)


def normalise_overrides(
    overrides: Mapping[str, OverrideValue] | Iterable[tuple[str, OverrideValue]],
) -> tuple[tuple[str, OverrideValue], ...]:
    """Overrides as a tuple of (key, value) sorted by key; duplicate keys are an error."""
    pairs = list(overrides.items()) if isinstance(overrides, Mapping) else [tuple(p) for p in overrides]
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ConfigError(f"override key(s) given twice: {', '.join(duplicates)}")
    typed = []
    for key, value in pairs:
        value = tuple(value) if isinstance(value, list) else value  # JSON gives lists back
        items = value if isinstance(value, tuple) else (value,)
        if not isinstance(key, str) or not all(isinstance(item, Scalar) for item in items):
            raise ConfigError(f"override {key!r}={value!r}: keys are strings, values str/int/float/bool/None "
                              "or a list of those")
        typed.append((key, value))
    return tuple(sorted(typed))
