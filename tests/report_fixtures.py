"""Shared fixtures of the report tests: the committed golden store and a fixed unseen-class rule."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from harness.job import JobSpec
from harness.plan.stages import start_overrides
from harness.reporting import UnseenRule, render_report
from harness.reporting.cells import load_cells
from harness.reporting.model import Table
from harness.reporting.published import load_published
from harness.reporting.render import Report, build_report, suite_datasets
from harness.reporting.tables import ReportInput
from harness.run.results import ResultRecord, write_record
from harness.run.runner import check_output, result_record

GOLDEN = Path(__file__).parent / "golden"
# A record `harness run --suite demo` wrote (its direct Raccoon cell, provenance and paths as written): the shape
# every fixture record takes. tests/test_scaledet_workload.py checks it against a fresh demo run's record.
REAL_RECORD = Path(__file__).parent / "data" / "demo_direct_record.json"
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


def transfer_spec(suite: str, dataset: str, mode: str, method: str, seed: int, shots: int | None,
                  upstream: str | None, pretrained: str | None = None) -> JobSpec:
    """A transfer cell as the planner writes it: starting from the pretrain cell on ``upstream`` (``A+B``), or from
    a named ``pretrained`` model."""
    overrides: dict[str, str] = {}
    if upstream:
        pretrain = JobSpec(suite, upstream, "pretrain", method, seed, None, "glip")
        overrides.update(start_overrides(upstream.split("+"), pretrain.job_id))
    if pretrained:
        overrides["pretrained"] = pretrained
    return JobSpec(suite, dataset, mode, method, seed, shots, "glip", overrides)


@cache
def real_record() -> ResultRecord:
    return ResultRecord.from_json(REAL_RECORD.read_text())


def work_output(metrics: dict[str, float], per_class: dict[str, float]) -> dict:
    """A work function's output as the scaledet workload returns it (the real record's config, text encoder,
    dataset and label-space fingerprints), with these metrics and per-class APs."""
    real = real_record()
    return {"metrics": metrics, "per_class_ap": per_class, "config": real.config, "text_encoder": real.text_encoder,
            "dataset_version": real.dataset_version, "dataset_sha": real.dataset_sha,
            "label_space_fingerprint": real.label_space_fingerprint}


def record_of(spec: JobSpec, sweep: str, output: dict | None, *, finished_at: str, git_sha: str,
              error: str = "boom") -> ResultRecord:
    """The record the job runner writes for ``spec``: ``output`` is a work function's return value, checked as the
    runner checks it (``None``: the job failed with ``error``)."""
    if output is None:
        return result_record(spec, sweep, status="failed", error=error, finished_at=finished_at,
                             provenance={"git_sha": git_sha})
    return result_record(spec, sweep, status="done", finished_at=finished_at, provenance={"git_sha": git_sha},
                         **check_output(output, "scaledet", spec.mode))


def write_cell(root: Path, dataset: str, ap: float | None, *, mode: str = "direct", method: str = "scaledet",
               seed: int = 0, per_class: dict[str, float] | None = None, upstream: str | None = "LVIS",
               shots: int | None = None, suite: str = "demo", finished_at: str = "2026-11-01T00:00:00+00:00",
               pretrained: str | None = None) -> None:
    """Write one result cell as the runner writes it (``ap=None``: a failed cell)."""
    spec = transfer_spec(suite, dataset, mode, method, seed, shots, upstream, pretrained)
    output = None if ap is None else work_output({"AP": ap}, per_class or {})
    write_record(root, record_of(spec, "s1", output, finished_at=finished_at, git_sha="abc1234"))
