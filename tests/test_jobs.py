"""JobSpec ids and plan() expansion."""

from __future__ import annotations

import pytest

from harness.job import JobSpec
from harness.plan.grid import plan
from scaledet.errors import ConfigError


def test_job_id_is_stable_and_ignores_override_order():
    a = JobSpec("demo", "Packages", "finetune", "scaledet", 3, overrides=(("b", 1), ("a", "x")))
    b = JobSpec("demo", "Packages", "finetune", "scaledet", 3, overrides={"a": "x", "b": 1})
    assert a == b and a.job_id == b.job_id
    assert a.overrides == (("a", "x"), ("b", 1))
    # pinned: changing the canonical JSON would orphan every stored result
    assert a.canonical_json() == (
        '{"dataset":"Packages","method":"scaledet","mode":"finetune","overrides":[["a","x"],["b",1]],'
        '"seed":3,"shots":null,"split_policy":"glip","suite":"demo"}')
    assert len(a.job_id) == 12 and int(a.job_id, 16) >= 0
    assert JobSpec("demo", "Packages", "finetune", "scaledet", 30).job_id != a.job_id


def test_plan_expands_modes_methods_seeds_and_shots():
    specs = plan("demo", ["A", "B"], ["direct", "finetune", "fewshot", "pretrain"], ["scaledet", "baseline"],
                 [3, 30], shots=[1, 5])
    by_mode = {m: [s for s in specs if s.mode == m] for m in ("direct", "finetune", "fewshot", "pretrain")}
    assert len(by_mode["direct"]) == len(by_mode["finetune"]) == 2 * 2 * 2
    assert len(by_mode["fewshot"]) == 2 * 2 * 2 * 2
    assert {s.shots for s in by_mode["fewshot"]} == {1, 5}
    assert {s.shots for s in by_mode["direct"]} == {None}
    # pretrain: one job per method x seed over the whole suite
    assert len(by_mode["pretrain"]) == 2 * 2 and {s.dataset for s in by_mode["pretrain"]} == {"A+B"}
    assert len({s.job_id for s in specs}) == len(specs)
    assert plan("demo", ["A", "B"], ["direct"], ["scaledet"], [3, 3]) == plan("demo", ["A", "B"], ["direct"],
                                                                          ["scaledet"], [3])


@pytest.mark.parametrize("kwargs, message", [
    ({"modes": ["finetuen"]}, "unknown mode 'finetuen' (did you mean 'finetune'?); valid: direct, fewshot"),
    ({"methods": ["scaledt"]}, "unknown method 'scaledt' (did you mean 'scaledet'?)"),
])
def test_plan_rejects_unknown_names(kwargs, message):
    args = {"modes": ["direct"], "methods": ["scaledet"], **kwargs}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        plan("demo", ["A"], args["modes"], args["methods"], [3])


def test_spec_from_dict_is_strict():
    spec = JobSpec("demo", "A", "fewshot", "scaledet", 3, shots=5, overrides={"k": 1.5})
    assert JobSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError, match="unknown job spec field 'sed'"):
        JobSpec.from_dict({**spec.to_dict(), "sed": 1}, where="x.json")
    with pytest.raises(ConfigError, match="shots must be set for the modes fewshot, linear-fewshot, prompt-fewshot only"):
        JobSpec("demo", "A", "direct", "scaledet", 3, shots=5)
    with pytest.raises(ConfigError, match="given twice"):
        JobSpec("demo", "A", "direct", "scaledet", 3, overrides=(("k", 1), ("k", 2)))
