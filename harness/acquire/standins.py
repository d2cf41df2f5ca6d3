"""Stand-in data for rehearsals: small generated datasets in each dataset's own standard layout.

A rehearsal (``--rehearse``) runs every cell of a real plan at toy scale on CPU. A dataset on disk is
sampled (:func:`sample_records`: its real layout, real files); an absent one gets a stand-in written here,
so the layout readers (:func:`harness.catalog.datasets.load_split`, :func:`harness.catalog.upstream.load_upstream`
with its OpenImages CSV conversion) and the label spaces run at their real size: the registry's classes for
an ODinW dataset, the packaged class lists for the upstream ones (1203 + 80 + 365 + 601 = 2,249 labels).

- Images: small JPEGs (noise with a filled rectangle per box, in the class's colour), written with PIL.
- ODinW (GLIP's layout, :func:`write_odinw_standin`): every split of ``spec.split_files``, Roboflow's id-0
  root category beside the registry's categories (the readers drop it), every class boxed in each split.
- Upstream (:func:`write_upstream_standin`): LVIS v1 (``lvis_v1_<split>.json``, images named by
  ``coco_url`` and taken from the COCO root: COCO's images are reused when there are any, since LVIS's
  images are COCO's), COCO 2017, Objects365 v2 (train images unpacked as ``patch0/…``, val images as the
  json names them, ``images/v1/patch0/…``), OpenImages v6 (box CSVs, image-level label CSVs,
  ``class-descriptions-boxable.csv``, the class hierarchy json). A few boxes per image, classes spread.
- A marker file (:data:`MARKER`) in each stand-in's folder records what was written: a second call with
  the same settings writes nothing; only folders carrying it are ever removed.

:func:`standin_data` prepares a rehearsal's data root: stand-ins for the absent datasets of a suite,
symlinks to the present ones (so the one ``$SCALEDET_DATA`` of a job finds both), and the environment
variables a job needs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import random
import shutil
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from harness.catalog import datasets as registry
from harness.catalog import upstream
from harness.catalog.upstream_labels import HIERARCHY_FILE, UPSTREAM_ORDER, read_label_file, upstream_classes
from scaledet.data import CocoDataset, subset
from scaledet.errors import ConfigError, DataError
from scaledet.files import atomic_write_text
from scaledet.names import check_name

log = logging.getLogger(__name__)

MARKER = ".scaledet-standin.json"
STANDIN_VERSION = 1
UPSTREAM_BOXES_PER_IMAGE = 3
Size = tuple[int, int]  # (width, height)


# ---------------------------------------------------------------- sampling present data


def sample_records(dataset: CocoDataset, k: int, seed: int = 0) -> CocoDataset:
    """``k`` images of ``dataset`` chosen by ``seed`` (all of them when it has no more), with their annotations
    and evaluation json restricted alike (:func:`scaledet.data.subset`); images keep the dataset's order."""
    if k < 1:
        raise ConfigError(f"{dataset.name}: a sample needs k >= 1 images, got {k}")
    if k >= len(dataset.images):
        return dataset
    ids = [img["id"] for img in dataset.images]
    return subset(dataset, random.Random(f"{dataset.name}:{seed}").sample(ids, k))


# ---------------------------------------------------------------- markers and images


def _settings(**values: Any) -> dict[str, Any]:
    return {"version": STANDIN_VERSION, **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}}


def is_standin(folder: Path) -> bool:
    """Whether ``folder`` holds a stand-in written here (its marker file)."""
    return (folder / MARKER).is_file()


def _written(folder: Path, settings: dict[str, Any]) -> bool:
    """True when ``folder`` already holds a stand-in written with ``settings``."""
    try:
        return json.loads((folder / MARKER).read_text()).get("settings") == settings
    except (OSError, ValueError, AttributeError):
        return False


def _mark(folder: Path, what: str, settings: dict[str, Any] | None) -> None:
    """Write the marker; ``settings`` None while writing (a crashed write is then rewritten, or removed)."""
    atomic_write_text(folder / MARKER, json.dumps({"standin": what, "settings": settings}, indent=1))


def _rng(*key: object) -> np.random.Generator:
    """A generator seeded by ``key`` (stable across processes: no ``hash()``)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _colour(index: int) -> tuple[int, int, int]:
    return ((index * 67 + 40) % 256, (index * 131 + 90) % 256, (index * 29 + 160) % 256)


def _boxes(rng: np.random.Generator, size: Size, n: int) -> list[list[float]]:
    """``n`` boxes ``[x, y, w, h]`` inside an image of ``size``, at least 4 pixels a side."""
    width, height = size
    out = []
    for _ in range(n):
        w = int(rng.integers(max(4, width // 8), max(5, width // 2) + 1))
        h = int(rng.integers(max(4, height // 8), max(5, height // 2) + 1))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        out.append([float(x), float(y), float(w), float(h)])
    return out


def _write_image(path: Path, size: Size, rng: np.random.Generator, boxes: Sequence[Sequence[float]],
                 classes: Sequence[int]) -> None:
    """A JPEG of ``size``: noise, and a rectangle per box in its class's colour."""
    width, height = size
    image = Image.fromarray(rng.integers(0, 96, (height, width, 3), dtype=np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for (x, y, w, h), cls in zip(boxes, classes):
        draw.rectangle([x, y, x + w - 1, y + h - 1], fill=_colour(cls))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=90)


def _check_size(size: Size, images_per_split: int) -> Size:
    width, height = (int(v) for v in size)
    if width < 16 or height < 16:
        raise ConfigError(f"stand-in image size must be at least 16x16 pixels, got {width}x{height}")
    if images_per_split < 1:
        raise ConfigError(f"stand-ins need images_per_split >= 1, got {images_per_split}")
    return width, height


def _class_plan(n_classes: int, n_images: int, per_image: int, offset: int = 0,
                order: Sequence[int] | None = None) -> list[list[int]]:
    """Class indices per image: ``per_image`` consecutive classes of ``order`` (default: id order) from
    ``offset``, wrapping, so ``n_images * per_image >= n_classes`` boxes every class."""
    order = list(order) if order is not None else list(range(n_classes))
    return [[order[(offset + i * per_image + j) % n_classes] for j in range(per_image)] for i in range(n_images)]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, separators=(",", ":")))


# ---------------------------------------------------------------- ODinW


def write_odinw_standin(spec: registry.DatasetSpec, data_root: Path, *, images_per_split: int = 4,
                        size: Size = (64, 48), seed: int = 0) -> Path:
    """Write a stand-in of ODinW dataset ``spec`` in GLIP's layout under ``data_root``; its variant folder.

    Every split of ``spec.split_files`` gets ``images_per_split`` JPEGs beside its annotation json (file
    names carry the split: pistols keeps all splits in one folder) and enough boxes that each class has one.
    """
    if spec.embedded:
        raise ConfigError(f"{spec.name}: the embedded demo copy ships with the package; it needs no stand-in")
    size = _check_size(size, images_per_split)
    folder = spec.folder(Path(data_root))
    settings = _settings(images_per_split=images_per_split, size=size, seed=seed)
    if _written(folder, settings):
        log.debug("%s: stand-in already at %s", spec.name, folder)
        return folder
    _mark(folder, f"odinw/{spec.name} (being written)", None)
    # Roboflow's root category (id 0, or the registry's root ids: ChessPieces' 1), dropped by readers
    roots = [{"id": cid, "name": spec.name, "supercategory": "none"} for cid in spec.root_ids or (0,)]
    categories = sorted(roots + [{"id": cid, "name": name, "supercategory": spec.name}
                                 for cid, name in spec.categories], key=lambda category: category["id"])
    per_image = max(1, math.ceil(len(spec.categories) / images_per_split))
    for number, (split, relative) in enumerate(spec.split_files.items()):
        annotation_path = folder / relative
        rng = _rng("odinw", spec.name, split, seed)
        images, annotations = [], []
        for i, classes in enumerate(_class_plan(len(spec.categories), images_per_split, per_image)):
            file_name = f"standin_{split}_{i:04d}.jpg"
            boxes = _boxes(rng, size, len(classes))
            _write_image(annotation_path.parent / file_name, size, rng, boxes, classes)
            image_id = number * 10_000 + i + 1
            images.append({"id": image_id, "file_name": file_name, "width": size[0], "height": size[1]})
            for box, cls in zip(boxes, classes):
                annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                    "category_id": spec.categories[cls][0], "bbox": box,
                                    "area": box[2] * box[3], "iscrowd": 0, "segmentation": []})
        _write_json(annotation_path, {
            "info": {"description": f"{spec.name} {split}: rehearsal stand-in written by harness.acquire.standins"},
            "licenses": [], "categories": categories, "images": images, "annotations": annotations})
    _mark(folder, f"odinw/{spec.name}", settings)
    log.info("%s: stand-in written to %s (%d images per split)", spec.name, folder, images_per_split)
    return folder


# ---------------------------------------------------------------- upstream


def write_upstream_standin(name: str, root: Path, *, images_per_split: int = 4, size: Size = (64, 48),
                           seed: int = 0, coco_root: Path | None = None) -> Path:
    """Write a stand-in of upstream dataset ``name`` (lvis, coco, objects365, openimages) in its standard
    layout (:data:`harness.catalog.upstream.SPECS`) at ``root``, with the real class list; ``root``.

    LVIS's images live under the COCO root (``coco_root``, default ``root``'s sibling ``coco``): the first
    images of its ``train2017``/``val2017`` are used when there are any, else stand-in images are written
    there (only when that root holds no COCO annotations: real data is never written to).
    """
    name = check_name("upstream dataset", name, UPSTREAM_ORDER)
    size = _check_size(size, images_per_split)
    root = Path(root)
    settings = _settings(images_per_split=images_per_split, size=size, seed=seed)
    if name == "lvis":
        coco_root = Path(coco_root) if coco_root is not None else root.parent / "coco"
        settings["coco_root"] = str(coco_root.resolve())
    if _written(root, settings):
        log.debug("%s: stand-in already at %s", name, root)
        return root
    _mark(root, f"upstream/{name} (being written)", None)
    writer = {"lvis": _write_lvis, "coco": _write_coco, "objects365": _write_objects365,
              "openimages": _write_openimages}[name]
    writer(root, images_per_split, size, seed, coco_root)
    _mark(root, f"upstream/{name}", settings)
    log.info("%s: stand-in written to %s (%d images per split, %d classes)", name, root, images_per_split,
             len(upstream_classes(name)))
    return root


def _upstream_plan(name: str, split: str, n_images: int, seed: int) -> list[list[int]]:
    """Class indices per image: a few per image from a seeded order of the classes, val after train's."""
    n_classes = len(upstream_classes(name))
    order = _rng("order", name, seed).permutation(n_classes).tolist()
    offset = 0 if split == "train" else n_images * UPSTREAM_BOXES_PER_IMAGE
    return _class_plan(n_classes, n_images, UPSTREAM_BOXES_PER_IMAGE, offset, order)


def _coco_style(name: str, split: str, images_per_split: int, size: Size, seed: int, image_dir: Path,
                file_name: Callable[[int], str], extra_image: Callable[[int], dict[str, Any]] | None = None,
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Images written under ``image_dir`` and their COCO records: (images, annotations)."""
    classes = upstream_classes(name)
    rng = _rng(name, split, seed)
    images, annotations = [], []
    for i, plan in enumerate(_upstream_plan(name, split, images_per_split, seed)):
        image_id = (0 if split == "train" else 1_000_000) + i + 1
        boxes = _boxes(rng, size, len(plan))
        relative = file_name(image_id)
        _write_image(image_dir / relative, size, rng, boxes, plan)
        record = {"id": image_id, "file_name": relative, "width": size[0], "height": size[1]}
        images.append({**record, **(extra_image(image_id) if extra_image else {})})
        for box, cls in zip(boxes, plan):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": classes[cls].original_id, "bbox": box, "area": box[2] * box[3],
                                "iscrowd": 0})
    return images, annotations


def _write_coco(root: Path, images_per_split: int, size: Size, seed: int, _coco_root: Path | None) -> None:
    categories = [{"id": c.original_id, "name": c.name, "supercategory": "object"} for c in upstream_classes("coco")]
    for split in upstream.SPLITS:
        layout = upstream.SPECS["coco"].splits[split]
        images, annotations = _coco_style(
            "coco", split, images_per_split, size, seed, root / layout.images, lambda i: f"{i:012d}.jpg",
            lambda i, s=split: {"coco_url": f"http://images.cocodataset.org/{s}2017/{i:012d}.jpg", "license": 1})
        _write_json(root / layout.annotations[0], {
            "info": {"description": "COCO 2017 rehearsal stand-in"}, "licenses": [],
            "categories": categories, "images": images, "annotations": annotations})


def _o365_name(image_id: int) -> str:
    return f"images/v1/patch0/objects365_v1_{image_id:08d}.jpg"


def _o365_unpacked(image_id: int) -> str:
    return _o365_name(image_id).removeprefix("images/v1/")


def _write_objects365(root: Path, images_per_split: int, size: Size, seed: int, _coco_root: Path | None) -> None:
    categories = [{"id": c.original_id, "name": c.name} for c in upstream_classes("objects365")]
    for split in upstream.SPLITS:
        layout = upstream.SPECS["objects365"].splits[split]
        # train as its tars unpack (patch0/...), val as the json names it: both forms the reader accepts
        on_disk = _o365_unpacked if split == "train" else _o365_name
        images, annotations = _coco_style("objects365", split, images_per_split, size, seed,
                                          root / layout.images, on_disk)
        images = [{**img, "file_name": _o365_name(img["id"])} for img in images]
        _write_json(root / layout.annotations[0], {
            "info": {"description": "Objects365 v2 rehearsal stand-in"}, "licenses": [],
            "categories": categories, "images": images, "annotations": annotations})


def _coco_images(coco_root: Path, split: str, k: int) -> list[str]:
    """Up to ``k`` JPEG names in COCO's ``<split>2017`` folder (sorted; empty when there is none)."""
    folder = coco_root / f"{split}2017"
    if not folder.is_dir():
        return []
    names = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".jpg") and entry.is_file():
                names.append(entry.name)
                if len(names) == k:
                    break
    return sorted(names)


def _write_lvis(root: Path, images_per_split: int, size: Size, seed: int, coco_root: Path | None) -> None:
    assert coco_root is not None
    classes = upstream_classes("lvis")
    coco_written = upstream.is_present("coco", {"coco": coco_root})
    for split in upstream.SPLITS:
        plan = _upstream_plan("lvis", split, images_per_split, seed)
        names = _coco_images(coco_root, split, images_per_split)
        folder = coco_root / f"{split}2017"
        if not names:
            if coco_written:
                raise DataError(f"LVIS stand-in: COCO root {coco_root} has annotations but no images in {folder}; "
                                "LVIS's images are COCO's")
            rng = _rng("lvis", split, seed)
            names = [f"{(500_000 if split == 'train' else 1_500_000) + i + 1:012d}.jpg"
                     for i in range(images_per_split)]  # not the COCO stand-in's names
            for file, classes_of in zip(names, plan):
                _write_image(folder / file, size, rng, _boxes(rng, size, len(classes_of)), classes_of)
        rng = _rng("lvis-boxes", split, seed)
        images, annotations = [], []
        for i, (file, classes_of) in enumerate(zip(names, plan)):
            with Image.open(folder / file) as image:
                width, height = image.size
            stem = Path(file).stem
            image_id = int(stem) if stem.isdigit() else i + 1
            negative = classes[plan[(i + 1) % len(plan)][0]].original_id if len(plan) > 1 else None
            images.append({"id": image_id, "coco_url": f"http://images.cocodataset.org/{split}2017/{file}",
                           "width": width, "height": height, "license": 1,
                           "neg_category_ids": [negative] if negative is not None and negative not in
                           {classes[c].original_id for c in classes_of} else [],
                           "not_exhaustive_category_ids": []})
            for box, cls in zip(_boxes(rng, (width, height), len(classes_of)), classes_of):
                annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                    "category_id": classes[cls].original_id, "bbox": box, "area": box[2] * box[3]})
        counts = {classes[c].original_id for p in plan for c in p}
        categories = [{"id": c.original_id, "name": c.name, "synset": "", "synonyms": [c.name], "def": "",
                       "frequency": c.frequency, "image_count": int(c.original_id in counts),
                       "instance_count": int(c.original_id in counts)} for c in classes]
        _write_json(root / upstream.SPECS["lvis"].splits[split].annotations[0], {
            "info": {"description": "LVIS v1 rehearsal stand-in"}, "licenses": [],
            "categories": categories, "images": images, "annotations": annotations})


def _openimages_id(split: str, index: int, seed: int) -> str:
    return hashlib.sha256(f"{split}:{index}:{seed}".encode()).hexdigest()[:16]


def _csv_text(header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _write_openimages(root: Path, images_per_split: int, size: Size, seed: int, _coco_root: Path | None) -> None:
    spec = upstream.SPECS["openimages"]
    classes = upstream_classes("openimages")
    atomic_write_text(root / spec.class_file, _csv_text(None, ((c.mid, c.name) for c in classes)))
    atomic_write_text(root / "bbox_labels_600_hierarchy.json", json.dumps(read_label_file(HIERARCHY_FILE)))
    width, height = size
    for split, layout in spec.splits.items():
        rng = _rng("openimages", split, seed)
        plan = _upstream_plan("openimages", split, images_per_split, seed)
        boxes_rows, label_rows = [], []
        for i, classes_of in enumerate(plan):
            image_id = _openimages_id(split, i, seed)
            boxes = _boxes(rng, size, len(classes_of))
            _write_image(root / layout.images / f"{image_id}.jpg", size, rng, boxes, classes_of)
            for (x, y, w, h), cls in zip(boxes, classes_of):
                boxes_rows.append((image_id, "xclick", classes[cls].mid, 1, round(x / width, 6),
                                   round((x + w) / width, 6), round(y / height, 6), round((y + h) / height, 6),
                                   0, 0, 0, 0, 0))
            label_rows += [(image_id, "verification", classes[c].mid, 1) for c in dict.fromkeys(classes_of)]
            negative = plan[(i + 1) % len(plan)][0]
            if negative not in classes_of:
                label_rows.append((image_id, "verification", classes[negative].mid, 0))
        atomic_write_text(root / layout.annotations[0], _csv_text(
            ("ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
             "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"), boxes_rows))
        atomic_write_text(root / layout.image_labels[0], _csv_text(
            ("ImageID", "Source", "LabelName", "Confidence"), label_rows))


# ---------------------------------------------------------------- a rehearsal's data root


def _link(link: Path, target: Path, marker_folder: Path | None = None) -> None:
    """``link`` -> ``target``, replacing an older link or a stand-in folder (its marker in ``marker_folder``,
    default ``link``); never other content."""
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return
        link.unlink()
    elif link.exists():
        _remove_standin(link, marker_folder)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)


def _remove_standin(folder: Path, marker_folder: Path | None = None) -> None:
    """Remove ``folder`` (a symlink, or a stand-in whose marker is in ``marker_folder``, default ``folder``)."""
    if folder.is_symlink():
        folder.unlink()
        return
    if not folder.exists():
        return
    if not is_standin(marker_folder or folder):
        raise DataError(f"{folder} is in the way of a stand-in or link and is not a stand-in written by "
                        f"harness (no {MARKER}); move it away or use another rehearsal data root")
    shutil.rmtree(folder)


def standin_data(data_root: Path, suite: str, datasets: Iterable[str] | None = None, *,
                 images_per_split: int = 4, seed: int = 0) -> dict[str, str]:
    """Prepare ``data_root`` for a rehearsal of ``suite``'s ``datasets`` (default: all the suite uses).

    Absent datasets (absent as ``harness ls`` sees them: :meth:`DatasetSpec.is_present`,
    :func:`harness.catalog.upstream.is_present`) get stand-ins under ``data_root``; present ones are linked
    from it (``data_root/odinw/<Name>``, ``data_root/<upstream name>``) unless their own ``$SCALEDET_<NAME>_ROOT``
    finds them. Returns the environment a job needs: ``$SCALEDET_DATA`` when an ODinW stand-in was needed,
    ``$SCALEDET_<NAME>_ROOT`` per upstream stand-in (and COCO's for LVIS's images); nothing for present data.
    ``data_root`` must not be the real data root: stand-ins there would pass for the real datasets.
    """
    data_root = Path(data_root).expanduser().absolute()
    real_root = registry.data_root().expanduser().absolute()
    if data_root.resolve() == real_root.resolve() and not is_standin(data_root):
        raise ConfigError(f"the rehearsal data root {data_root} is the real data root (${registry.DATA_ENV}); "
                          "stand-ins there would pass for the real datasets: use another folder")
    if not is_standin(data_root):  # marks the folder as a rehearsal root (its environment may be active later)
        _mark(data_root, "rehearsal data root", {"version": STANDIN_VERSION})
    record = registry.get_suite(suite)
    names = list(dict.fromkeys(datasets if datasets is not None else registry.suite_datasets(suite)))
    if record.label_spaces_only:
        return _upstream_standins(data_root, [check_name(f"dataset of suite '{suite}'", n, UPSTREAM_ORDER)
                                              for n in names], images_per_split, seed)
    return _odinw_standins(data_root, real_root, [registry.get_dataset(n, suite) for n in names],
                           images_per_split, seed)


def _odinw_standins(data_root: Path, real_root: Path, specs: list[registry.DatasetSpec], images_per_split: int,
                    seed: int) -> dict[str, str]:
    specs = [spec for spec in specs if not spec.embedded]  # embedded copies are read from the package
    present = [spec for spec in specs if spec.is_present(real_root)]
    absent = [spec for spec in specs if spec not in present]
    if not absent:
        return {}
    for spec in absent:
        _clear_top(data_root, spec)
        folder = spec.folder(data_root)
        if folder.is_symlink() or (folder.exists() and not is_standin(folder)):
            _remove_standin(folder)  # a link left from when the data was present
        if any(spec.annotation_path(s, real_root).is_file() for s in spec.splits):
            log.warning("%s: only some splits are under %s; the rehearsal uses a stand-in", spec.name, real_root)
        write_odinw_standin(spec, data_root, images_per_split=images_per_split, seed=seed)
    for spec in present if real_root.resolve() != data_root.resolve() else ():
        _clear_top(data_root, spec)
        _link(spec.folder(data_root), spec.folder(real_root))
    log.info("rehearsal data root %s: stand-ins for %s; linked: %s", data_root,
             ", ".join(s.name for s in absent), ", ".join(s.name for s in present) or "none")
    return {registry.DATA_ENV: str(data_root)}


def _clear_top(data_root: Path, spec: registry.DatasetSpec) -> None:
    """Remove a link at ``odinw/<archive>`` when ``spec`` lies below it (a variant): links are made per variant,
    as two variants of one dataset may be one present and one a stand-in, and nothing is written through a
    link into the real data."""
    top = data_root / "odinw" / spec.archive_name
    if spec.variant and top.is_symlink():
        top.unlink()


def _upstream_standins(data_root: Path, names: list[str], images_per_split: int, seed: int) -> dict[str, str]:
    env: dict[str, str] = {}
    needed = list(names)
    if "lvis" in needed and not upstream.is_present("lvis") and "coco" not in needed:
        needed.append("coco")  # LVIS's images are COCO's: its stand-in takes them from the COCO root
    for name in sorted(needed, key=lambda n: n != "coco"):  # COCO first: LVIS reuses its images
        spec = upstream.get_spec(name)
        if upstream.is_present(name):
            root, _ = upstream.dataset_root(name)
            if not os.environ.get(spec.env_var) and root.absolute() != data_root / name:
                _link(data_root / name, root.absolute())  # found through $SCALEDET_DATA: keep it found
            continue
        root = data_root / name
        if root.is_symlink() or (root.exists() and not is_standin(root)):
            _remove_standin(root)
        coco_root = None
        if name == "lvis":
            coco_root = Path(env.get(upstream.SPECS["coco"].env_var) or upstream.dataset_root("coco")[0])
        write_upstream_standin(name, root, images_per_split=images_per_split, seed=seed, coco_root=coco_root)
        env[spec.env_var] = str(root)
    log.info("rehearsal upstream data: stand-ins %s", ", ".join(f"{k}={v}" for k, v in env.items()) or "none")
    return env
