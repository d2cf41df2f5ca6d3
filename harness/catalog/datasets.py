"""The dataset registry: one typed record per ODinW dataset, suites as data, the data root.

Facts come from GLIP's ``configs/odinw_13/*.yaml`` (variant folders, split files, category ids), its
``configs/odinw_35/*.yaml`` (prompt overrides, off by default; the 22 datasets beyond ODinW-13, whose classes are
known by those names only; every dataset's schedule, ``GENERAL_COPY`` and ``MAX_EPOCH``) and the GLIP paper's
Table 9 (image counts of ODinW-13). On disk the layout is GLIP's:
``<data root>/odinw/<Name>/<variant>/<split>/annotations_without_background.json`` with the split's images beside
the json, so a GLIP ODinW folder works as a data root as it is (two variants of one dataset share ``<Name>``).

Suites:

- ``odinw13``: the 13 transfer datasets; their checkpoint is ``--checkpoint``/``--pretrained``, else the paper's
  pretraining on the ``upstream`` suite's datasets (its ``pretrain_suite``), planned first.
- ``odinw35``: GLIP's 35 ODinW configs (the 13 and 22 more), pretrained as ``odinw13``. AerialMaritimeDrone,
  EgoHands and OxfordPets come in two variants each; a variant that is not ODinW-13's takes GLIP's config name
  (``AerialMaritimeDrone_tiled``, ``EgoHands_specific``, ``OxfordPets_by-breed``, ``OxfordPets_by-species``).
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
    archive: str = ""  # GLIP's zip and top folder, odinw/<archive>/<variant> (default: the name)
    root_ids: tuple[int, ...] = ()  # ids of a Roboflow root class the json lists: dropped, not a class
    # the json's class names are known and checked on reading; False: GLIP's config gives only the names it
    # prompts with (OVERRIDE_CATEGORY, the classes here), so reading checks the ids only
    names_checked: bool = True
    general_copy: int = 16  # GLIP's schedule: copies of the train split per epoch (DATASETS.GENERAL_COPY)
    max_epoch: int = 12  # GLIP's schedule: epochs (SOLVER.MAX_EPOCH)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.categories)

    @property
    def category_ids(self) -> tuple[int, ...]:
        return tuple(cid for cid, _ in self.categories)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.split_files)

    @property
    def archive_name(self) -> str:
        """GLIP's zip and top folder: two variants of one dataset (AerialMaritimeDrone large and tiled) share it."""
        return self.archive or self.name

    def folder(self, root: Path | None = None) -> Path:
        """``<root>/odinw/<archive>/<variant>``; embedded datasets live under the package's demo folder."""
        base = DEMO_ROOT if self.embedded else (root or data_root())
        return base / "odinw" / self.archive_name / self.variant

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


def _spec(name: str, variant: str, categories: list[str], images: tuple[int | None, int | None, int | None], *,
          minival: bool = False, files: Mapping[str, str] | None = None, **extra) -> DatasetSpec:
    split_files = dict(files or {s: f"{s}/{ANNOTATION_FILE}" for s in ("train", "valid", "test")})
    if minival:
        split_files["mini_val"] = f"mini_val/{ANNOTATION_FILE}"
    counts = dict(zip(("train", "valid", "test"), images))
    return DatasetSpec(name=name, variant=variant, categories=tuple(enumerate(categories, start=1)),
                       split_files=split_files, images=counts, glip_eval_split="mini_val" if minival else "valid",
                       **extra)


# export layouts: <variant>/<split>_annotations_without_background.json (valid is "val")
_EXPORT_FILES = {s: f"{g}_{ANNOTATION_FILE}" for s, g in (("train", "train"), ("valid", "val"), ("test", "test"))}


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
          paper_name="PascalVOC", general_copy=4),
    _spec("pistols", "export", ["pistol"], (2377, 297, 297), paper_name="Pistols",
          files=_EXPORT_FILES),
    _spec("pothole", "", ["pothole"], (465, 133, 67), paper_name="Pothole"),
    _spec("Raccoon", "Raccoon.v2-raw.coco", ["raccoon"], (150, 29, 17), paper_name="Raccoon", licence="MIT",
          citation="Dat Tran, raccoon_dataset (2017); ODinW's Roboflow version Raccoon.v2-raw"),
    _spec("ShellfishOpenImages", "raw", ["Crab", "Lobster", "Shrimp"], (406, 116, 58), paper_name="Shellfish"),
    _spec("thermalDogsAndPeople", "", ["dog", "person"], (142, 41, 20), paper_name="Thermal"),
    _spec("VehiclesOpenImages", "416x416", ["Ambulance", "Bus", "Car", "Motorcycle", "Truck"], (878, 250, 126),
          minival=True, paper_name="Vehicles"),
)


def _glip35(name: str, variant: str, categories: list[str], *, root_ids: tuple[int, ...] = (),
            **extra) -> DatasetSpec:
    """An ODinW-35 dataset known from GLIP's config only: its classes are the config's OVERRIDE_CATEGORY names
    (ids from 1, a Roboflow root class's id left out), image counts unknown."""
    spec = _spec(name, variant, categories, (None, None, None), names_checked=False, root_ids=root_ids, **extra)
    ids = [i for i in range(1, len(categories) + len(root_ids) + 1) if i not in root_ids]
    return replace(spec, categories=tuple(zip(ids, categories)))


# GLIP's configs/odinw_35 beyond ODinW-13's (the 13 are the same folders, classes and splits there); a second
# variant of a dataset is named <Name>_<variant>, as GLIP's config is
ODINW35_ONLY: tuple[DatasetSpec, ...] = (
    _glip35("AerialMaritimeDrone_tiled", "tiled", ["boat", "car", "dock", "jetski", "lift"],
            archive="AerialMaritimeDrone"),
    _glip35("AmericanSignLanguageLetters", "American Sign Language Letters.v1-v1.coco", ["A", "B", "C", "D",
            "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W",
            "X", "Y", "Z"], general_copy=4),
    _glip35("BCCD", "BCCD.v3-raw.coco", ["Platelets", "RBC", "WBC"]),
    _glip35("ChessPieces", "Chess Pieces.v23-raw.coco", ["black bishop", "black king", "black knight",
            "black pawn", "black queen", "black rook", "white bishop", "white king", "white knight",
            "white pawn", "white queen", "white rook"], root_ids=(1,), general_copy=4),
    _glip35("DroneControl", "Drone Control.v3-raw.coco", ["follow", "follow_hand", "land", "land_hand",
            "null", "object", "takeoff", "takeoff-hand"], minival=True, general_copy=8),
    _glip35("EgoHands_specific", "specific", ["myleft", "myright", "yourleft", "yourright"],
            minival=True, archive="EgoHands"),
    _glip35("HardHatWorkers", "raw", ["head", "helmet", "person"]),
    _glip35("MaskWearing", "raw", ["mask", "no-mask"]),
    _glip35("MountainDewCommercial", "", ["bottle"]),
    _glip35("OxfordPets_by-breed", "by-breed", ["cat-Abyssinian", "cat-Bengal", "cat-Birman", "cat-Bombay",
            "cat-British_Shorthair", "cat-Egyptian_Mau", "cat-Maine_Coon", "cat-Persian", "cat-Ragdoll",
            "cat-Russian_Blue", "cat-Siamese", "cat-Sphynx", "dog-american_bulldog",
            "dog-american_pit_bull_terrier", "dog-basset_hound", "dog-beagle", "dog-boxer", "dog-chihuahua",
            "dog-english_cocker_spaniel", "dog-english_setter", "dog-german_shorthaired",
            "dog-great_pyrenees", "dog-havanese", "dog-japanese_chin", "dog-keeshond", "dog-leonberger",
            "dog-miniature_pinscher", "dog-newfoundland", "dog-pomeranian", "dog-pug", "dog-saint_bernard",
            "dog-samoyed", "dog-scottish_terrier", "dog-shiba_inu", "dog-staffordshire_bull_terrier",
            "dog-wheaten_terrier", "dog-yorkshire_terrier"],
            minival=True, archive="OxfordPets", general_copy=4),
    _glip35("OxfordPets_by-species", "by-species", ["cat", "dog"],
            minival=True, archive="OxfordPets"),
    _glip35("PKLot", "640", ["space-empty", "space-occupied"], minival=True),
    _glip35("ThermalCheetah", "", ["cheetah", "human"]),
    _glip35("UnoCards", "raw", ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13",
            "14"], minival=True, general_copy=4),
    _glip35("WildfireSmoke", "", ["smoke"]),
    _glip35("boggleBoards", "416x416AutoOrient/export", ["Q", "a", "an", "b", "c", "d", "e", "er", "f", "g",
            "h", "he", "i", "in", "j", "k", "l", "m", "n", "o", "o ", "p", "q", "qu", "r", "s", "t", "t\\",
            "th", "u", "v", "w", "wild", "x", "y", "z"], files=_EXPORT_FILES),
    _glip35("brackishUnderwater", "960x540", ["crab", "fish", "jellyfish", "shrimp", "small_fish", "starfish"],
            minival=True),
    _glip35("dice", "mediumColor/export", ["1", "2", "3", "4", "5", "6"],
            files=_EXPORT_FILES),
    _glip35("openPoetryVision", "512x512", ["American Typewriter", "Andale Mono", "Apple Chancery", "Arial",
            "Avenir", "Baskerville", "Big Caslon", "Bradley Hand", "Brush Script MT", "Chalkboard",
            "Comic Sans MS", "Copperplate", "Courier", "Didot", "Futura", "Geneva", "Georgia", "Gill Sans",
            "Helvetica", "Herculanum", "Impact", "Kefa", "Lucida Grande", "Luminari", "Marker Felt", "Menlo",
            "Monaco", "Noteworthy", "Optima", "PT Sans", "PT Serif", "Palatino", "Papyrus", "Phosphate",
            "Rockwell", "SF Pro", "SignPainter", "Skia", "Snell Roundhand", "Tahoma", "Times New Roman",
            "Trebuchet MS", "Verdana"], minival=True, general_copy=2),
    _glip35("plantdoc", "416x416", ["Apple Scab Leaf", "Apple leaf", "Apple rust leaf", "Bell_pepper leaf",
            "Bell_pepper leaf spot", "Blueberry leaf", "Cherry leaf", "Corn Gray leaf spot",
            "Corn leaf blight", "Corn rust leaf", "Peach leaf", "Potato leaf", "Potato leaf early blight",
            "Potato leaf late blight", "Raspberry leaf", "Soyabean leaf", "Soybean leaf",
            "Squash Powdery mildew leaf", "Strawberry leaf", "Tomato Early blight leaf",
            "Tomato Septoria leaf spot", "Tomato leaf", "Tomato leaf bacterial spot",
            "Tomato leaf late blight", "Tomato leaf mosaic virus", "Tomato leaf yellow virus",
            "Tomato mold leaf", "Tomato two spotted spider mites leaf", "grape leaf", "grape leaf black rot"],
            general_copy=4),
    _glip35("selfdrivingCar", "fixedLarge/export", ["biker", "car", "pedestrian", "trafficLight",
            "trafficLight-Green", "trafficLight-GreenLeft", "trafficLight-Red", "trafficLight-RedLeft",
            "trafficLight-Yellow", "trafficLight-YellowLeft", "truck"], files=_EXPORT_FILES),
    _glip35("websiteScreenshots", "", ["button", "field", "heading", "iframe", "image", "label", "link",
            "text"], minival=True),
)
# GLIP's configs/odinw_35/_all.json order
ODINW35: tuple[str, ...] = (
    "AerialMaritimeDrone", "AerialMaritimeDrone_tiled", "AmericanSignLanguageLetters", "Aquarium", "BCCD",
    "ChessPieces", "CottontailRabbits", "DroneControl", "EgoHands", "EgoHands_specific", "HardHatWorkers",
    "MaskWearing", "MountainDewCommercial", "NorthAmericaMushrooms", "OxfordPets_by-breed", "OxfordPets_by-species",
    "PKLot", "Packages", "PascalVOC", "Raccoon", "ShellfishOpenImages", "ThermalCheetah", "UnoCards",
    "VehiclesOpenImages", "WildfireSmoke", "boggleBoards", "brackishUnderwater", "dice", "openPoetryVision",
    "pistols", "plantdoc", "pothole", "selfdrivingCar", "thermalDogsAndPeople", "websiteScreenshots",
)
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in ODINW13 + ODINW35_ONLY}


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
    "odinw13": Suite("odinw13", tuple(spec.name for spec in ODINW13), pretrain_suite="upstream",
                     description="ODinW-13 (GLIP's 13 datasets, paper Table D)"),
    "odinw35": Suite("odinw35", ODINW35, pretrain_suite="upstream",
                     description="ODinW-35 (GLIP's 35 configs over 32 downloadable folders)"),
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


def download_command(spec: DatasetSpec) -> str:
    """The ``harness download`` command line that gets ``spec`` (naming a suite that holds it)."""
    suite = "" if spec.name in SUITES["odinw13"].datasets else "--suite odinw35 "
    return f"harness download {suite}--only {spec.name}"


def load_split(spec: DatasetSpec, split: str, root: Path | None = None) -> CocoDataset:
    """A split of ``spec`` as COCO records named after the dataset; a missing file says how to get it."""
    path = spec.annotation_path(split, root)
    if not path.is_file():
        hint = ("the demo data ship with the package: reinstall it" if spec.embedded else
                f"run `{download_command(spec)}` or `harness data import {spec.name} --from PATH`"
                f" (data root {root or data_root()}, set ${DATA_ENV} to use another)")
        raise DataError(f"{spec.name}: no {split} annotations at {path}; {hint}")
    dataset = load_coco(path, name=spec.name, root_ids=(0, *spec.root_ids))
    names = tuple(n.lower() for n in dataset.category_names)
    if dataset.category_ids != spec.category_ids or (
            spec.names_checked and names != tuple(n.lower() for n in spec.class_names)):
        checked = "" if spec.names_checked else " (ids checked; the names are GLIP's prompt names)"
        raise DataError(f"{path}: categories {list(zip(dataset.category_ids, dataset.category_names))} do not "
                        f"match the registry's {list(spec.categories)} for {spec.name}{checked}")
    return dataset


def require_suite_of_datasets(suite: str) -> Suite:
    """The suite, refusing the label-space-only ``upstream`` suite where ODinW datasets are needed."""
    record = get_suite(suite)
    if record.label_spaces_only:
        raise ConfigError(f"suite '{suite}' declares label spaces only; its data is read by harness.catalog.upstream")
    return record
