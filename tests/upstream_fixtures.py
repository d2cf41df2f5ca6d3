"""Tiny upstream datasets in their standard on-disk layouts, with the real class lists."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from PIL import Image

from harness.catalog.upstream_labels import upstream_classes


def write_jpeg(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 80, 40)).save(path, format="JPEG")


def _categories(dataset: str) -> list[dict]:
    cats = []
    for c in upstream_classes(dataset):
        cat = {"id": c.original_id, "name": c.name}
        if dataset == "lvis":
            cat.update(frequency=c.frequency, synonyms=[c.name], synset="x.n.01")
        cats.append(cat)
    return cats


def make_coco(root: Path, split: str = "val") -> Path:
    """COCO 2017: annotations/instances_val2017.json + val2017/*.jpg (person, toothbrush)."""
    images = [{"id": 139, "file_name": "000000000139.jpg", "width": 64, "height": 48},
              {"id": 285, "file_name": "000000000285.jpg", "width": 40, "height": 40}]
    for img in images:
        write_jpeg(root / f"{split}2017" / img["file_name"], (img["width"], img["height"]))
    anns = [{"id": 1, "image_id": 139, "category_id": 1, "bbox": [1, 2, 30, 20], "area": 600, "iscrowd": 0},
            {"id": 2, "image_id": 285, "category_id": 90, "bbox": [5, 5, 10, 10], "area": 100, "iscrowd": 0}]
    path = root / "annotations" / f"instances_{split}2017.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": _categories("coco")}))
    return path


def make_lvis(root: Path, coco_root: Path) -> Path:
    """LVIS v1: lvis_v1_val.json whose images are COCO 2017 train images (named by coco_url)."""
    write_jpeg(coco_root / "train2017" / "000000000009.jpg", (50, 60))
    images = [{"id": 9, "coco_url": "http://images.cocodataset.org/train2017/000000000009.jpg", "width": 50,
               "height": 60, "neg_category_ids": [2], "not_exhaustive_category_ids": []}]
    anns = [{"id": 1, "image_id": 9, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
            {"id": 2, "image_id": 9, "category_id": 1203, "bbox": [10, 10, 20, 20], "area": 400}]
    path = root / "lvis_v1_val.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": _categories("lvis")}))
    return path


def make_objects365(root: Path, split: str = "val", patch_dirs: bool = False) -> Path:
    """Objects365 v2: <split>/zhiyuan_objv2_<split>.json + <split>/images/v2/patch16/*.jpg (or patch16/ when
    ``patch_dirs``, as the train tars unpack)."""
    name = "images/v2/patch16/objects365_v2_00908726.jpg"
    image_path = root / split / (name.removeprefix("images/v2/") if patch_dirs else name)
    write_jpeg(image_path, (32, 32))
    images = [{"id": 908726, "file_name": name, "width": 32, "height": 32}]
    anns = [{"id": 1, "image_id": 908726, "category_id": 365, "bbox": [1, 1, 8, 8], "area": 64, "iscrowd": 0}]
    path = root / split / f"zhiyuan_objv2_{split}.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": _categories("objects365")}))
    return path


BOX_HEADER = ["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
              "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"]


def write_csv(path: Path, header: list[str] | None, rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def box_row(image: str, mid: str, x0: float, x1: float, y0: float, y1: float, group: int = 0) -> list:
    return [image, "xclick", mid, 1, x0, x1, y0, y1, 0, 0, group, 0, 0]


def make_openimages(root: Path) -> Path:
    """OpenImages v6 validation: boxes CSV, class-descriptions-boxable.csv (no header, as released),
    image-level labels, validation/<ImageID>.jpg."""
    classes = upstream_classes("openimages")
    write_csv(root / "class-descriptions-boxable.csv", None, [[c.mid, c.name] for c in classes])
    write_jpeg(root / "validation" / "0001eeaf4aed83f9.jpg", (200, 100))
    write_jpeg(root / "validation" / "000595fe6fee6369.jpg", (80, 160))
    write_jpeg(root / "validation" / "00075905539074f2.jpg", (10, 10))
    tortoise, person = classes[0].mid, "/m/01g317"
    rows = [box_row("0001eeaf4aed83f9", tortoise, 0.1, 0.5, 0.2, 0.6),
            box_row("0001eeaf4aed83f9", person, 0.0, 1.0, 0.0, 1.0, group=1),
            box_row("000595fe6fee6369", "/m/not_a_class", 0.1, 0.2, 0.1, 0.2),
            box_row("000595fe6fee6369", person, 0.25, 0.75, 0.5, 1.0)]
    write_csv(root / "validation-annotations-human-imagelabels-boxable.csv",
              ["ImageID", "Source", "LabelName", "Confidence"],
              [["0001eeaf4aed83f9", "verification", person, 1], ["000595fe6fee6369", "verification", tortoise, 0],
               ["00075905539074f2", "verification", person, 0]])
    return write_csv(root / "validation-annotations-bbox.csv", BOX_HEADER, rows)
