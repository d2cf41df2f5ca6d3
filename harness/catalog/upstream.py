"""Upstream datasets as they lie on a cluster's disk: LVIS v1, COCO 2017, Objects365 v2, OpenImages v6.

Nothing is downloaded. Each dataset has a root, found in this order: ``roots[name]`` passed by the caller
(the config layer), the environment variable ``SCALEDET_<NAME>_ROOT``, ``$SCALEDET_DATA/<name>`` where
``$SCALEDET_DATA`` defaults to ``platformdirs.user_cache_dir("scaledet")/data``. Inside a root the
standard layouts are expected (see :data:`SPECS`; docs/upstream.md draws them). A missing file raises
:class:`DataError` naming every path looked at and the setting to change.

Records are :class:`scaledet.data.CocoDataset` s whose category ids and names are checked against the
package's class lists, so ``unified_indices(name)`` maps them onto the 2,249-label space.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.catalog import openimages
from harness.catalog.datasets import DATA_ENV, data_root
from harness.catalog.upstream_labels import UPSTREAM_ORDER, unified_indices, upstream_classes
from scaledet.data import CocoDataset, load_coco
from scaledet.errors import DataError
from scaledet.names import check_name

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val")


@dataclass(frozen=True)
class SplitLayout:
    """Where one split lives, relative to the dataset root: candidate annotation files (first found wins)
    and the image folder. ``image_labels``: optional OpenImages image-level label CSVs."""

    annotations: tuple[str, ...]
    images: str
    image_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpstreamSpec:
    """One upstream dataset: names, where it is found, its layout, how it is scored."""

    name: str
    short: str  # the paper's abbreviation: L, C, O365, OID
    title: str
    layout: str  # "coco", "lvis" (COCO json, images named by coco_url), "openimages" (boxable CSVs)
    metric: str  # "coco", "lvis", "openimages"
    splits: Mapping[str, SplitLayout]
    class_file: str = ""  # openimages: class-descriptions-boxable.csv
    image_root_from: str = ""  # lvis: its images are COCO 2017's, under the coco root

    @property
    def env_var(self) -> str:
        return f"SCALEDET_{self.name.upper()}_ROOT"


SPECS: dict[str, UpstreamSpec] = {
    "lvis": UpstreamSpec(
        "lvis", "L", "LVIS v1", "lvis", "lvis",
        {split: SplitLayout((f"lvis_v1_{split}.json", f"annotations/lvis_v1_{split}.json"), "")
         for split in SPLITS},
        image_root_from="coco"),
    "coco": UpstreamSpec(
        "coco", "C", "COCO 2017", "coco", "coco",
        {split: SplitLayout((f"annotations/instances_{split}2017.json",), f"{split}2017") for split in SPLITS}),
    "objects365": UpstreamSpec(
        "objects365", "O365", "Objects365 v2", "coco", "coco",
        {split: SplitLayout((f"{split}/zhiyuan_objv2_{split}.json", f"annotations/zhiyuan_objv2_{split}.json",
                             f"zhiyuan_objv2_{split}.json"), split) for split in SPLITS}),
    "openimages": UpstreamSpec(
        "openimages", "OID", "OpenImages v6", "openimages", "openimages",
        {"train": SplitLayout(("oidv6-train-annotations-bbox.csv", "train-annotations-bbox.csv"), "train",
                              ("oidv6-train-annotations-human-imagelabels.csv",
                               "train-annotations-human-imagelabels-boxable.csv")),
         "val": SplitLayout(("validation-annotations-bbox.csv",), "validation",
                            ("validation-annotations-human-imagelabels-boxable.csv",
                             "validation-annotations-human-imagelabels.csv"))},
        class_file="class-descriptions-boxable.csv"),
}
assert tuple(SPECS) == UPSTREAM_ORDER


@dataclass(frozen=True)
class UpstreamRecords:
    """A loaded upstream split: the COCO records, where they came from, and the unified-space mapping."""

    spec: UpstreamSpec
    split: str
    annotation_file: Path
    dataset: CocoDataset
    unified: dict[int, int]  # category id -> index in the 2,249-label space


def dataset_root(name: str, roots: Mapping[str, str | Path] | None = None) -> tuple[Path, str]:
    """The root of upstream dataset ``name`` and a description of the setting that chose it."""
    spec = get_spec(name)
    if roots and roots.get(name):
        return Path(roots[name]).expanduser(), f"the '{name}' root setting"
    if os.environ.get(spec.env_var):
        return Path(os.environ[spec.env_var]).expanduser(), f"${spec.env_var}"
    return data_root() / name, f"the default ${DATA_ENV}/{name} (set ${spec.env_var} or ${DATA_ENV})"


def get_spec(name: str) -> UpstreamSpec:
    return SPECS[check_name("upstream dataset", name, SPECS)]


def find_file(root: Path, candidates: tuple[str, ...], what: str, setting: str) -> Path:
    """The first candidate that exists under ``root``; else a DataError listing them all."""
    for candidate in candidates:
        if (root / candidate).is_file():
            return root / candidate
    looked = ", ".join(str(root / c) for c in candidates)
    raise DataError(f"{what} not found; looked for {looked} (root from {setting}; no download is attempted)")


def annotation_file(name: str, split: str, roots: Mapping[str, str | Path] | None = None) -> Path:
    """The annotation file (json or bbox CSV) of ``name``/``split`` on disk."""
    spec = get_spec(name)
    layout = spec.splits[check_name("split", split, spec.splits)]
    root, setting = dataset_root(name, roots)
    return find_file(root, layout.annotations, f"{spec.title} {split} annotations", setting)


def has_split(name: str, split: str, roots: Mapping[str, str | Path] | None = None) -> bool:
    """Whether the annotation file of ``name``/``split`` is on disk (what ``harness ls`` calls present)."""
    try:
        annotation_file(name, split, roots)
    except DataError:
        return False
    return True


def is_present(name: str, roots: Mapping[str, str | Path] | None = None) -> bool:
    """Whether every split of upstream dataset ``name`` has its annotation file on disk."""
    return all(has_split(name, split, roots) for split in get_spec(name).splits)


def missing_annotations(names: Sequence[str], splits: Sequence[str] = SPLITS,
                        roots: Mapping[str, str | Path] | None = None) -> list[str]:
    """One entry per dataset of ``names`` with an annotation file of ``splits`` absent: which splits, the files
    looked for, the root and the setting that chose it (empty: all there). Images are checked when loaded."""
    missing = []
    for name in names:
        spec = get_spec(name)
        root, setting = dataset_root(name, roots)
        absent = [split for split in splits if not any((root / c).is_file() for c in spec.splits[split].annotations)]
        if absent:
            looked = ", ".join(" or ".join(spec.splits[split].annotations) for split in absent)
            missing.append(f"{spec.title} ({name}): no {' or '.join(absent)} annotations in {root} (looked for "
                           f"{looked}; root from {setting})")
    return missing


def load_upstream(name: str, split: str = "val", roots: Mapping[str, str | Path] | None = None,
                  cache_dir: Path | None = None) -> UpstreamRecords:
    """Load ``name``/``split`` from its standard layout, check its classes, map them to the unified space.

    OpenImages is converted to COCO json first (cached, see :mod:`harness.catalog.openimages`).
    """
    spec = get_spec(name)
    path = annotation_file(name, split, roots)
    if spec.layout == "openimages":
        path = convert_openimages_split(spec, split, roots, cache_dir)
    dataset = load_coco(path, name=name)
    check_categories(name, dataset, path)
    dataset = _with_image_root(spec, split, dataset, roots)
    log.info("%s %s: %d images, %d categories from %s", spec.title, split, len(dataset),
             len(dataset.category_ids), path)
    return UpstreamRecords(spec, split, path, dataset, unified_indices(name))


def check_categories(name: str, dataset: CocoDataset, path: Path) -> None:
    """The json's categories must be the package's class list: same ids, same names (whitespace aside)."""
    expected = {c.original_id: c.name.strip() for c in upstream_classes(name)}
    found = {cid: cname.strip() for cid, cname in zip(dataset.category_ids, dataset.category_names)}
    if found == expected:
        return
    missing = sorted(set(expected) - set(found))[:5]
    extra = sorted(set(found) - set(expected))[:5]
    renamed = [(cid, found[cid], expected[cid]) for cid in sorted(set(found) & set(expected))
               if found[cid] != expected[cid]][:5]
    raise DataError(f"{path}: categories differ from the {get_spec(name).title} class list "
                    f"({len(found)} found, {len(expected)} expected); missing ids {missing}, unexpected ids "
                    f"{extra}, different names (id, found, expected) {renamed}")


def _with_image_root(spec: UpstreamSpec, split: str, dataset: CocoDataset,
                     roots: Mapping[str, str | Path] | None) -> CocoDataset:
    layout = spec.splits[split]
    if spec.image_root_from:
        image_root, setting = dataset_root(spec.image_root_from, roots)
        setting += " (LVIS uses COCO 2017's images)"
    else:
        root, setting = dataset_root(spec.name, roots)
        image_root = root / layout.images
    images = dataset.images
    if spec.layout == "lvis":
        images = tuple({**img, "file_name": _lvis_file_name(img)} for img in images)
    if images:
        images = _resolve_patches(images, image_root, spec, setting)
    source = {**dataset.source, "images": list(images)}
    return replace(dataset, image_root=image_root, images=images, source=source)


def _lvis_file_name(image: dict[str, Any]) -> str:
    """LVIS v1 images carry ``coco_url`` ``http://images.cocodataset.org/train2017/000000391895.jpg``."""
    if "coco_url" not in image:
        return image["file_name"]
    return "/".join(image["coco_url"].split("/")[-2:])


_O365_PREFIX = re.compile(r"^images/v\d+/")


def _resolve_patches(images: tuple[dict[str, Any], ...], image_root: Path, spec: UpstreamSpec,
                     setting: str) -> tuple[dict[str, Any], ...]:
    """Check the first image exists. Objects365 jsons name ``images/v1/patch8/x.jpg``; its train tars
    unpack to ``patch8/x.jpg``: whichever of the two is on disk is used for every image."""
    first = images[0]["file_name"]
    if (image_root / first).is_file():
        return images
    if spec.name == "objects365" and (image_root / _O365_PREFIX.sub("", first)).is_file():
        return tuple({**img, "file_name": _O365_PREFIX.sub("", img["file_name"])} for img in images)
    tried = [str(image_root / first)]
    if spec.name == "objects365":
        tried.append(str(image_root / _O365_PREFIX.sub("", first)))
    raise DataError(f"{spec.title} images not found: looked for {' and '.join(tried)} "
                    f"(image root from {setting})")


def convert_openimages_split(spec: UpstreamSpec, split: str, roots: Mapping[str, str | Path] | None,
                             cache_dir: Path | None) -> Path:
    """Convert an OpenImages split found in its standard layout (see the module docstring); the json path."""
    layout = spec.splits[split]
    root, setting = dataset_root(spec.name, roots)
    bbox = find_file(root, layout.annotations, f"{spec.title} {split} boxes", setting)
    class_csv = find_file(root, (spec.class_file,), f"{spec.title} class descriptions", setting)
    labels = next((root / c for c in layout.image_labels if (root / c).is_file()), None)
    sizes = root / f"{layout.images}-image-sizes.csv"
    result = openimages.convert_openimages(bbox, cache_dir or openimages.cache_root(), image_dir=root / layout.images,
                                image_sizes=sizes if sizes.is_file() else None, image_labels=labels,
                                class_csv=class_csv)
    return result.path
