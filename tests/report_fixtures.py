"""Shared fixtures of the report tests: the committed golden store and a fixed unseen-class rule."""

from __future__ import annotations

from pathlib import Path

from harness.reporting import UnseenRule, render_report

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

# A fixed stand-in for harness.datasets.unseen_classes: fewer unseen classes with more upstream data;
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
