"""Class lists of the four upstream datasets and ScaleDet's unified label space (paper §4.2).

The lists are package data (``harness/data/labels/*.json``, copies of the project's shared lists). The
unified space is their concatenation in the paper's order LVIS, COCO, Objects365, OpenImages:
1203 + 80 + 365 + 601 = 2,249 labels; "person" of COCO and "Person" of Objects365 stay two labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from scaledet.names import check_name

UPSTREAM_ORDER: tuple[str, ...] = ("lvis", "coco", "objects365", "openimages")
LABEL_FILES: dict[str, str] = {
    "lvis": "lvis_v1.json",
    "coco": "coco.json",
    "objects365": "objects365_v2.json",
    "openimages": "openimages_v6.json",
}
HIERARCHY_FILE = "openimages_v6_hierarchy.json"


@dataclass(frozen=True)
class UpstreamClass:
    """One class of an upstream dataset.

    ``name`` is the dataset's own spelling (as in its annotation files: LVIS ``aerosol_can``, Objects365
    ``Formula 1 `` with its trailing space); ``text`` is the form to embed (underscores to spaces, the
    Objects365 typo fixes, stripped; LVIS's bracketed qualifier stays, ``bow_(weapon)`` -> ``bow (weapon)``:
    without it five classes would embed from another's text, e.g. ``fish`` and ``fish (food)``). ``original_id`` is the category id in the dataset's COCO json (for
    OpenImages: the row number in ``class-descriptions-boxable.csv``, which the conversion uses); ``mid``
    is the OpenImages MID (empty elsewhere); ``frequency`` is LVIS's r/c/f (empty elsewhere).
    """

    dataset: str
    name: str
    original_id: int
    text: str
    mid: str = ""
    frequency: str = ""


@dataclass(frozen=True)
class UnifiedLabel:
    """A label of the unified space: its position ``index`` and the class it comes from."""

    index: int
    dataset: str
    name: str
    original_id: int


def read_label_file(file_name: str) -> dict[str, Any]:
    """A JSON file of ``harness/data/labels``."""
    text = resources.files("harness").joinpath(f"data/labels/{file_name}").read_text(encoding="utf-8")
    return json.loads(text)


@cache
def upstream_classes(dataset: str) -> tuple[UpstreamClass, ...]:
    """The classes of ``dataset`` (one of :data:`UPSTREAM_ORDER`) in id order."""
    check_name("upstream dataset", dataset, UPSTREAM_ORDER)
    rows = read_label_file(LABEL_FILES[dataset])["classes"]
    classes = tuple(_to_class(dataset, row) for row in rows)
    return tuple(sorted(classes, key=lambda c: c.original_id))


def _to_class(dataset: str, row: dict[str, Any]) -> UpstreamClass:
    name = row["name"]
    if dataset == "lvis":
        return UpstreamClass(dataset, name, int(row["id"]), name.replace("_", " ").strip(),
                             frequency=row["frequency"])
    if dataset == "objects365":
        return UpstreamClass(dataset, name, int(row["id"]), row.get("name_fixed", name).strip())
    if dataset == "openimages":
        return UpstreamClass(dataset, name, int(row["id"]), name.strip(), mid=row["mid"])
    return UpstreamClass(dataset, name, int(row["id"]), name.strip())


def unified_label_space(datasets: tuple[str, ...] = UPSTREAM_ORDER) -> tuple[UnifiedLabel, ...]:
    """The concatenated label space of ``datasets``, always in the paper's order (L, C, O365, OID).

    With the default, 2,249 labels: (dataset, class name, original id) for indices 0..2248.
    """
    for name in datasets:
        check_name("upstream dataset", name, UPSTREAM_ORDER)
    ordered = [name for name in UPSTREAM_ORDER if name in datasets]
    labels: list[UnifiedLabel] = []
    for name in ordered:
        for cls in upstream_classes(name):
            labels.append(UnifiedLabel(len(labels), name, cls.name, cls.original_id))
    return tuple(labels)


def unified_indices(dataset: str, datasets: tuple[str, ...] = UPSTREAM_ORDER) -> dict[int, int]:
    """Original category id of ``dataset`` → index in the unified space of ``datasets``."""
    return {label.original_id: label.index for label in unified_label_space(datasets) if label.dataset == dataset}


@cache
def openimages_hierarchy() -> dict[str, Any]:
    """OpenImages ``bbox_labels_600_hierarchy.json`` (root ``/m/0bl9f`` "Entity")."""
    return read_label_file(HIERARCHY_FILE)
