"""The dataset registry: one typed record per ODinW dataset, suites as data, the data root.

Facts come from GLIP's ``configs/odinw_13/*.yaml`` (variant folders, split files, category ids), its
``configs/odinw_35`` table (prompt overrides, off by default) and the GLIP paper's Table 9 (image counts).
On disk the layout is GLIP's: ``<data root>/odinw/<Name>/<variant>/<split>/annotations_without_background.json``
with the split's images beside the json, so a GLIP ODinW folder works as a data root as it is.

Suites:

- ``odinw13``: the 13 transfer datasets; their checkpoint is ``--checkpoint``/``--pretrained``, else the paper's
  pretraining on the ``upstream`` suite's datasets (its ``pretrain_suite``), planned first.
- ``demo``: small downscaled copies of four real ODinW datasets that ship inside the package
  (``harness/data/demo``); the suite pretrains on its ``upstream`` datasets and transfers to its ``datasets``.
- ``upstream``: LVIS, COCO, Objects365, OpenImages as they lie on a cluster's disk (``harness.catalog.upstream``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

from harness.catalog.upstream_labels import UPSTREAM_ORDER, upstream_classes
from scaledet.data import CocoDataset, load_coco
from scaledet.errors import ConfigError, DataError
from scaledet.names import check_name

log = logging.getLogger(__name__)

DATA_ENV = "SCALEDET_DATA"
ANNOTATION_FILE = "annotations_without_background.json"
SPLITS: tuple[str, ...] = ("train", "valid", "test", "mini_val")
SPLIT_POLICIES: dict[str, str] = {
    "glip": "GLIP's evaluation split: valid (mini_val for EgoHands and VehiclesOpenImages)",
    "test": "the test split (PascalVOC has none and uses valid)",
    "valid": "the valid split",
}
DEMO_ROOT = Path(__file__).resolve().parents[1] / "data" / "demo"
GLIP_CITATION = "Li et al., Grounded Language-Image Pre-training, CVPR 2022 (ODinW); data from Roboflow Universe"
UNRECORDED_LICENCE = "as published on Roboflow Universe (not recorded here: check the dataset's page)"


@dataclass(frozen=True)
class DatasetSpec:
    """One ODinW dataset: where it lies under the data root, its splits, classes, counts and provenance."""

    name: str  # canonical ODinW spelling, e.g. "thermalDogsAndPeople"
    variant: str  # folder under odinw/<name>/ ("" when the dataset has none)
    categories: tuple[tuple[int, str], ...]  # (json id, name), id order
    split_files: Mapping[str, str]  # split -> annotation json relative to the variant folder
    images: Mapping[str, int | None]  # split -> image count (GLIP paper Table 9; demo: as shipped)
    glip_eval_split: str = "valid"
    licence: str = UNRECORDED_LICENCE
    citation: str = GLIP_CITATION
    paper_name: str = ""  # the GLIP paper's short name (AerialDrone, Rabbits, ...)
    prompt_overrides: tuple[str, ...] = ()  # GLIP odinw_35 names, one per category (off by default)
    roboflow: str | None = None  # default "workspace/project/version" of its Roboflow export
    boxes: Mapping[str, int] = field(default_factory=dict)  # split -> box count, where known
    embedded: bool = False  # ships inside the package (demo)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.categories)

    @property
    def category_ids(self) -> tuple[int, ...]:
        return tuple(cid for cid, _ in self.categories)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.split_files)

    def folder(self, root: Path | None = None) -> Path:
        """``<root>/odinw/<name>/<variant>``; embedded datasets live under the package's demo folder."""
        base = DEMO_ROOT if self.embedded else (root or data_root())
        return base / "odinw" / self.name / self.variant

    def annotation_path(self, split: str, root: Path | None = None) -> Path:
        check_name(f"split of {self.name}", split, self.split_files)
        return self.folder(root) / self.split_files[split]

    def eval_split(self, policy: str) -> str:
        """The split a transfer result is scored on under split ``policy`` (see :data:`SPLIT_POLICIES`)."""
        check_name("split policy", policy, SPLIT_POLICIES)
        if policy == "glip":
            return self.glip_eval_split
        if policy == "test" and "test" not in self.split_files:
            return "valid"
        return policy

    def is_present(self, root: Path | None = None) -> bool:
        return all(self.annotation_path(split, root).is_file() for split in self.split_files)


def _spec(name: str, variant: str, categories: list[str], images: tuple[int, int, int | None], *,
          minival: bool = False, files: Mapping[str, str] | None = None, **extra) -> DatasetSpec:
    split_files = dict(files or {s: f"{s}/{ANNOTATION_FILE}" for s in ("train", "valid", "test")})
    if minival:
        split_files["mini_val"] = f"mini_val/{ANNOTATION_FILE}"
    counts = dict(zip(("train", "valid", "test"), images))
    return DatasetSpec(name=name, variant=variant, categories=tuple(enumerate(categories, start=1)),
                       split_files=split_files, images=counts, glip_eval_split="mini_val" if minival else "valid",
                       **extra)


# GLIP's configs/odinw_13, in the paper's Table D order
ODINW13: tuple[DatasetSpec, ...] = (
    _spec("AerialMaritimeDrone", "large", ["boat", "car", "dock", "jetski", "lift"], (52, 15, 7),
          paper_name="AerialDrone", licence="MIT"),
    _spec("Aquarium", "Aquarium Combined.v2-raw-1024.coco",
          ["fish", "jellyfish", "penguin", "puffin", "shark", "starfish", "stingray"], (448, 127, 63),
          paper_name="Aquarium", licence="CC BY 4.0", boxes={"train": 3324, "valid": 909, "test": 584}),
    _spec("CottontailRabbits", "", ["Cottontail-Rabbit"], (1980, 19, 10), paper_name="Rabbits",
          prompt_overrides=("rabbit",)),
    _spec("EgoHands", "generic", ["hand"], (3840, 480, 480), minival=True, paper_name="EgoHands"),
    _spec("NorthAmericaMushrooms", "North American Mushrooms.v1-416x416.coco", ["CoW", "chanterelle"],
          (41, 5, 5), paper_name="Mushrooms", licence="Public Domain",
          prompt_overrides=("flat mushroom", "yellow mushroom"), boxes={"train": 67, "valid": 14, "test": 9}),
    _spec("Packages", "Raw", ["package"], (19, 4, 3), paper_name="Packages", licence="Public Domain",
          roboflow="joseph-nelson/packages-g0ton/6", boxes={"train": 31, "valid": 6, "test": 5}),
    _spec("PascalVOC", "", ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
                            "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
                            "sheep", "sofa", "train", "tvmonitor"], (13690, 3422, None),
          files={"train": f"train/{ANNOTATION_FILE}", "valid": f"valid/{ANNOTATION_FILE}"},
          paper_name="PascalVOC"),
    _spec("pistols", "export", ["pistol"], (2377, 297, 297), paper_name="Pistols",
          files={s: f"{g}_{ANNOTATION_FILE}" for s, g in (("train", "train"), ("valid", "val"), ("test", "test"))}),
    _spec("pothole", "", ["pothole"], (465, 133, 67), paper_name="Pothole"),
    _spec("Raccoon", "Raccoon.v2-raw.coco", ["raccoon"], (150, 29, 17), paper_name="Raccoon", licence="MIT",
          citation="Dat Tran, raccoon_dataset (2017); ODinW's Roboflow version Raccoon.v2-raw"),
    _spec("ShellfishOpenImages", "raw", ["Crab", "Lobster", "Shrimp"], (406, 116, 58), paper_name="Shellfish"),
    _spec("thermalDogsAndPeople", "", ["dog", "person"], (142, 41, 20), paper_name="Thermal"),
    _spec("VehiclesOpenImages", "416x416", ["Ambulance", "Bus", "Car", "Motorcycle", "Truck"], (878, 250, 126),
          minival=True, paper_name="Vehicles"),
)
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in ODINW13}


@dataclass(frozen=True)
class Suite:
    """A named set of transfer datasets, and the upstream datasets its own pretrain jobs train on."""

    name: str
    datasets: tuple[str, ...]
    upstream: tuple[str, ...] = ()  # the datasets its own pretrain jobs train on
    # where transfer cells without a checkpoint pretrain: "" = this suite's upstream datasets, else the named
    # suite's (odinw13 -> upstream: LVIS+COCO+O365+OID, the paper's); neither: a checkpoint must be given
    pretrain_suite: str = ""
    description: str = ""
    label_spaces_only: bool = False  # upstream: class lists are known, data is found through harness.catalog.upstream
    split_policy: str = "glip"  # the default split policy of its runs (SPLIT_POLICIES)


# The demo: downscaled copies shipped in the package (see harness/data/demo/README.md for the choice).
DEMO_UPSTREAM: tuple[str, ...] = ("Aquarium", "Packages", "Raccoon")
DEMO_DOWNSTREAM: tuple[str, ...] = ("NorthAmericaMushrooms", "Raccoon")

SUITES: dict[str, Suite] = {
    "odinw13": Suite("odinw13", tuple(DATASETS), pretrain_suite="upstream",
                     description="ODinW-13 (GLIP's 13 datasets, paper Table D)"),
    "demo": Suite("demo", DEMO_DOWNSTREAM, DEMO_UPSTREAM, split_policy="test",
                  description="embedded: pretrain on Aquarium+Packages+Raccoon, transfer to Mushrooms and Raccoon"),
    "upstream": Suite("upstream", UPSTREAM_ORDER, UPSTREAM_ORDER, label_spaces_only=True,
                      description="LVIS v1, COCO 2017, Objects365 v2, OpenImages v6 (class lists; data from disk)"),
}


def data_root() -> Path:
    """``$SCALEDET_DATA``, else ``<user cache dir>/scaledet/data``."""
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else Path(platformdirs.user_cache_dir("scaledet")) / "data"


def get_suite(name: str) -> Suite:
    """The named suite; an unknown name fails with the nearest names."""
    return SUITES[check_name("suite", name, SUITES)]


def get_dataset(name: str, suite: str = "odinw13") -> DatasetSpec:
    """The record of ODinW dataset ``name`` as ``suite`` uses it (the demo's are its embedded copies)."""
    if suite == "demo":
        demo = demo_datasets()
        return demo[check_name("dataset of suite 'demo'", name, demo)]
    return DATASETS[check_name("dataset", name, DATASETS)]


def suite_datasets(suite: str) -> tuple[str, ...]:
    """Every dataset a suite uses, transfer targets first, then upstream-only ones."""
    record = get_suite(suite)
    return tuple(dict.fromkeys(record.datasets + record.upstream))


@functools.cache
def demo_datasets() -> dict[str, DatasetSpec]:
    """The embedded demo copies: the ODinW records with the counts of what ships (``demo/stats.json``, read
    once: it is package data)."""
    stats_file = DEMO_ROOT / "stats.json"
    stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
    out = {}
    for name in dict.fromkeys(DEMO_UPSTREAM + DEMO_DOWNSTREAM):
        counts = stats.get(name, {})
        out[name] = replace(DATASETS[name], embedded=True,
                            images={s: c["images"] for s, c in counts.items()} or DATASETS[name].images,
                            boxes={s: c["boxes"] for s, c in counts.items()} or DATASETS[name].boxes)
    return out


def class_names(dataset: str, suite: str = "odinw13") -> tuple[str, ...]:
    """Class names in id order, for an ODinW dataset or an upstream label space (lvis, coco, ...)."""
    if dataset in UPSTREAM_ORDER:
        return tuple(c.name for c in upstream_classes(dataset))
    return get_dataset(dataset, suite).class_names


def load_split(spec: DatasetSpec, split: str, root: Path | None = None) -> CocoDataset:
    """A split of ``spec`` as COCO records named after the dataset; a missing file says how to get it."""
    path = spec.annotation_path(split, root)
    if not path.is_file():
        hint = ("the demo data ship with the package: reinstall it" if spec.embedded else
                f"run `harness download --only {spec.name}` or `harness data import {spec.name} --from PATH`"
                f" (data root {root or data_root()}, set ${DATA_ENV} to use another)")
        raise DataError(f"{spec.name}: no {split} annotations at {path}; {hint}")
    dataset = load_coco(path, name=spec.name)
    names = tuple(n.lower() for n in dataset.category_names)
    if dataset.category_ids != spec.category_ids or names != tuple(n.lower() for n in spec.class_names):
        raise DataError(f"{path}: categories {list(zip(dataset.category_ids, dataset.category_names))} do not "
                        f"match the registry's {list(spec.categories)} for {spec.name}")
    return dataset


def require_suite_of_datasets(suite: str) -> Suite:
    """The suite, refusing the label-space-only ``upstream`` suite where ODinW datasets are needed."""
    record = get_suite(suite)
    if record.label_spaces_only:
        raise ConfigError(f"suite '{suite}' declares label spaces only; its data is read by harness.catalog.upstream")
    return record
