"""Shared fixtures of the report tests: the committed golden store and a fixed unseen-class rule."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from harness.job import JobSpec
from harness.reporting import UnseenRule, render_report
from harness.reporting.cells import load_cells
from harness.reporting.model import Table
from harness.reporting.published import load_published
from harness.reporting.render import Report, build_report, suite_datasets
from harness.reporting.tables import ReportInput
from harness.run.results import ResultRecord, write_record

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_STORE = GOLDEN / "store"
GOLDEN_MD = GOLDEN / "odinw13_report.md"

ODINW13_CLASSES: dict[str, list[str]] = {
    "AerialMaritimeDrone": ["boat", "car", "dock", "jetski", "lift"],
    "Aquarium": ["fish", "jellyfish", "penguin", "puffin", "shark", "starfish", "stingray"],
    "CottontailRabbits": ["Cottontail-Rabbit"],
    "EgoHands": ["hand"],
    "NorthAmericaMushrooms": ["CoW", "chanterelle"],
    "Packages": ["package"],
    "PascalVOC": ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
                  "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
                  "train", "tvmonitor"],
    "pistols": ["pistol"],
    "pothole": ["pothole"],
    "Raccoon": ["raccoon"],
    "ShellfishOpenImages": ["Crab", "Lobster", "Shrimp"],
    "thermalDogsAndPeople": ["dog", "person"],
    "VehiclesOpenImages": ["Ambulance", "Bus", "Car", "Motorcycle", "Truck"],
}

# A fixed stand-in for harness.catalog.datasets.unseen_classes: fewer unseen classes with more upstream data;
# most datasets have none.
UNSEEN = {
    "LVIS": {"AerialMaritimeDrone": ["dock", "jetski", "lift"], "Aquarium": ["jellyfish", "stingray"],
             "PascalVOC": ["aeroplane", "diningtable", "tvmonitor"]},
    "LVIS+COCO": {"AerialMaritimeDrone": ["dock", "jetski", "lift"], "Aquarium": ["stingray"]},
}


def unseen_rule() -> UnseenRule:
    """The fixed test rule, named as such in the report."""
    return UnseenRule("fixed test rule (tests/report_fixtures.py)",
                      lambda upstream: {d: frozenset(n) for d, n in UNSEEN["+".join(upstream)].items()})


def render_golden(out: Path) -> Path:
    """Render the golden store exactly as the golden test does; returns the Markdown path."""
    return render_report(GOLDEN_STORE, "odinw13", out, "golden", unseen=unseen_rule())


@cache
def golden_report() -> Report:
    """The golden store's report, built in memory once (tables and figures, nothing written)."""
    cells = load_cells(GOLDEN_STORE, "odinw13", "golden")
    inp = ReportInput("odinw13", suite_datasets("odinw13", cells), cells, load_published("odinw13"),
                      unseen_rule())
    return build_report(inp, "golden")


def table(report: Report, name: str) -> Table:
    """The report's table called ``name``."""
    return next(t for t in report.tables if t.name == name)


def write_cell(root: Path, dataset: str, ap: float | None, *, mode: str = "direct", method: str = "scaledet",
               seed: int = 0, per_class: dict[str, float] | None = None, upstream: str | None = "LVIS",
               shots: int | None = None, suite: str = "demo", finished_at: str = "2026-11-01T00:00:00+00:00",
               pretrained: str | None = None) -> None:
    """Write one result cell in the store's format (``ap=None``: a failed cell)."""
    overrides = (("model.upstream", upstream),) if upstream else ()
    overrides += (("pretrained", pretrained),) if pretrained else ()
    spec = JobSpec(suite, dataset, mode, method, seed, shots, "glip", overrides)
    measured = {"status": "failed", "error": "boom"} if ap is None else {
        "status": "done", "metrics": {"AP": ap}, "per_class_ap": per_class or {}}
    write_record(root, ResultRecord(sweep="s1", job_id=spec.job_id, spec=spec.to_dict(), **measured,
                                    config={"lr": 0.0002}, text_encoder="minilm-l6", split_policy="glip",
                                    git_sha="abc1234", finished_at=finished_at))  # fmt: skip
