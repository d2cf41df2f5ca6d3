"""Training-data leakage verdicts: a model trained on a dataset or its source is marked, one whose data is not
declared (or declared in part) is unknown, the rest are zero-shot."""

from __future__ import annotations

from harness.catalog.leakage import (
    CLEAN,
    DECLARED,
    LEAK,
    UNKNOWN,
    Declared,
    declared_for,
    sources_of,
    upstream_declared,
    verdict,
)
from harness.workloads.hf.families import FAMILIES, declared_training


def status(model: str, dataset: str) -> str:
    """A published row's verdict, or a checkpoint's as its adapter family declares it."""
    return verdict(declared_for(model) or declared_training(model), dataset).status


def test_sources_of_datasets() -> None:
    assert sources_of("ShellfishOpenImages") == ("ShellfishOpenImages", "ODinW-13", "ODinW-35", "OpenImages")
    assert sources_of("PascalVOC")[-1] == "PASCAL VOC"
    assert sources_of("Raccoon") == ("Raccoon", "ODinW-13", "ODinW-35")
    assert sources_of("lvis") == ("lvis",)  # not an ODinW dataset


def test_grounding_dino_base_trained_on_odinw_leaks_everywhere_tiny_nowhere() -> None:
    for dataset in ("Raccoon", "AerialMaritimeDrone", "PascalVOC"):
        assert status("IDEA-Research/grounding-dino-base", dataset) == LEAK
        assert status("GroundingDINO-B", dataset) == LEAK
        assert status("IDEA-Research/grounding-dino-tiny", dataset) == CLEAN
    reason = verdict(declared_for("GroundingDINO-B"), "Raccoon").reason
    assert "ODinW-35" in reason and "Grounding DINO README" in reason


def test_openimages_training_leaks_only_the_openimages_datasets() -> None:
    model = "openmmlab-community/mm_grounding_dino_large_o365v2_oiv6_goldg"
    assert status(model, "ShellfishOpenImages") == LEAK and status(model, "VehiclesOpenImages") == LEAK
    assert status(model, "Raccoon") == CLEAN and status(model, "PascalVOC") == CLEAN
    assert status("ScaleDet-B", "VehiclesOpenImages") == LEAK and status("ScaleDet-B", "pothole") == CLEAN


def test_undeclared_or_partly_declared_training_data_is_unknown() -> None:
    assert status("someone/unknown-detector", "Raccoon") == UNKNOWN
    assert status("omlab/omdet-turbo-swin-tiny-hf", "Raccoon") == UNKNOWN  # declared in part
    assert status("iSEE-Laboratory/llmdet_tiny", "Aquarium") == UNKNOWN
    assert verdict(Declared(("PASCAL VOC",), "x", complete=False), "PascalVOC").status == LEAK  # overlap wins


def test_a_harness_model_declares_its_upstream_datasets_aliases_included() -> None:
    demo = upstream_declared(["Aquarium", "Packages", "Raccoon"])
    assert verdict(demo, "Raccoon").status == LEAK and verdict(demo, "NorthAmericaMushrooms").status == CLEAN
    paper = upstream_declared(["lvis", "coco", "objects365", "oid"])
    assert verdict(paper, "ShellfishOpenImages").status == LEAK and verdict(paper, "Raccoon").status == CLEAN


def test_every_declared_entry_names_its_source_and_some_data() -> None:
    assert all(entry.data and entry.source for entry in DECLARED.values())
    assert {"GLIP-T(C)", "GroundingDINO-T", "GroundingDINO-B"} <= set(DECLARED)  # the published external rows
    for family in FAMILIES:  # every family declares its known checkpoints, each with its source
        assert family.checkpoints and all(e.data and e.source for e in family.checkpoints.values()), family.name
    assert declared_training("IDEA-Research/grounding-dino-base") == DECLARED["GroundingDINO-B"]  # one fact
    assert declared_training("nobody/unknown") is None
