"""Method configs: presets, strict loading with did-you-mean, overrides."""

from __future__ import annotations

import pytest

from scaledet.config import load_config, preset, with_overrides
from scaledet.errors import ConfigError


def test_presets_differ_only_where_the_paper_says():
    assert preset("scaledet").model.soft_weight == 10.0
    assert preset("scaledet-hl").model.soft_weight == 0.0
    assert preset("baseline").model.soft_weight == 0.0 and preset("baseline").data.single_dataset
    assert preset("scaledet").train.lr == 2e-4


def test_unknown_key_names_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown key 'lr_step'.*did you mean 'lr_steps'.*valid: lr,"):
        load_config({"train": {"lr_step": [10]}})
    with pytest.raises(ConfigError, match="did you mean 'scaledet-hl'"):
        load_config({"preset": "scaledet_hl"})


def test_yaml_file_and_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("preset: scaledet-hl\ntrain:\n  max_steps: 12\n  lr_steps: [4, 8]\nmodel:\n  weights: null\n")
    cfg = load_config(path)
    assert cfg.method == "scaledet-hl" and cfg.train.max_steps == 12 and cfg.train.lr_steps == (4, 8)
    assert cfg.model.weights is None
    cfg = with_overrides(cfg, ["train.lr=1e-4", "data.scale_range=[0.5, 1.5]"])
    assert cfg.train.lr == 1e-4 and cfg.data.scale_range == (0.5, 1.5)
    assert load_config(cfg.to_dict()) == cfg  # round trip through a plain dict


def test_wrong_types_fail():
    with pytest.raises(ConfigError, match="expected an integer"):
        with_overrides(preset("scaledet"), ["train.max_steps=1.5"])
    with pytest.raises(ConfigError, match="expected true/false"):
        with_overrides(preset("scaledet"), ["train.channels_last=3"])


def test_overrides_are_typed_once_where_they_enter():
    from harness.commands.run import parse_overrides
    from harness.job import JobSpec
    from scaledet.config import apply_overrides, typed_override

    assert typed_override("data.scale_range", "[0.8, 1.2]") == (0.8, 1.2)  # text from an old file or --set
    assert typed_override("data.scale_range", [0.8, 1.2]) == (0.8, 1.2)
    assert typed_override("train.max_steps", 100.0) == 100 and isinstance(typed_override("train.max_steps", 100.0), int)
    assert typed_override("model.backbone", "r50") == "r50"
    assert typed_override("toy.steps", 5) == 5  # not a config key: as given, checked with the job
    with pytest.raises(ConfigError, match="expected an integer"):
        typed_override("train.max_steps", "1.5")
    pairs = dict(parse_overrides(["data.scale_range=[0.5, 1.5]", "train.lr=1e-4", "upstream=A+B"]))
    assert pairs == {"data.scale_range": (0.5, 1.5), "train.lr": 1e-4, "upstream": "A+B"}
    spec = JobSpec("demo", "Raccoon", "direct", "scaledet", 3, overrides=pairs)
    assert dict(spec.overrides)["data.scale_range"] == (0.5, 1.5)
    assert JobSpec.from_dict(spec.to_dict()) == spec  # JSON lists come back as the same tuple, same job id
    cfg = apply_overrides(preset("scaledet"), {k: v for k, v in pairs.items() if k != "upstream"})
    assert cfg.data.scale_range == (0.5, 1.5) and cfg.train.lr == 1e-4
