"""`harness data import` of the four real exports in /work/shared/data/odinw vs tests/data/import_stats.json.

Each dataset is imported once per module (Aquarium: 638 images copied, headers read, nothing decoded).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from harness import cli
from harness.acquire.importers import RECORD_FILE, ImportSummary, import_dataset
from harness.catalog.datasets import get_dataset, load_split

ODINW = Path(__file__).resolve().parents[2] / "shared" / "data" / "odinw"  # the shared real exports
if not ODINW.is_dir():
    ODINW = Path("/work/shared/data/odinw")
STATS = json.loads((Path(__file__).parent / "data" / "import_stats.json").read_text())
NAMES = ("Aquarium", "Packages", "NorthAmericaMushrooms", "Raccoon")


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, dict[str, ImportSummary]]:
    root = tmp_path_factory.mktemp("data-root")
    return root, {name: import_dataset(get_dataset(name), ODINW / name, root=root) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_import_matches_the_stats_file(imported, name):
    _, summaries = imported
    summary, expected = summaries[name], STATS[name]
    assert summary.fmt == expected["format"] and summary.seed == expected["seed"] == 0
    counts = {s: {"images": c.images, "boxes": c.boxes} for s, c in summary.splits.items()}
    assert counts == expected["splits"]
    assert summary.fixes == expected["fixes"]
    assert {s: {"from": m.from_split, "images": m.images} for s, m in summary.made_splits.items()} == \
        expected["made_splits"]


@pytest.mark.parametrize("name", NAMES)
def test_load_split_reads_every_imported_split(imported, name):
    root, summaries = imported
    spec = get_dataset(name)
    assert spec.is_present(root)
    for split, counts in STATS[name]["splits"].items():
        dataset = load_split(spec, split, root)
        assert len(dataset.images) == counts["images"]
        assert sum(len(v) for v in dataset.annotations.values()) == counts["boxes"]
        assert all((dataset.image_root / image["file_name"]).is_file() for image in dataset.images)
        assert list(summaries[name].splits[split].files) == [image["file_name"] for image in dataset.images]
        for anns in dataset.annotations.values():
            for ann in anns:
                x, y, w, h = ann["bbox"]
                image = next(i for i in dataset.images if i["id"] == ann["image_id"])
                assert w > 0 and h > 0 and x >= 0 and y >= 0
                assert x + w <= image["width"] + 1e-6 and y + h <= image["height"] + 1e-6


def test_yolo_imports_have_the_registry_image_counts_and_boxes_but_aquarium_s_two_zero_area_ones(imported):
    _, summaries = imported
    for name in ("Aquarium", "Packages", "NorthAmericaMushrooms"):
        spec = get_dataset(name)
        assert {s: c.images for s, c in summaries[name].splits.items()} == dict(spec.images)
        expected_boxes = dict(spec.boxes)
        if name == "Aquarium":  # two test lines are "4 cx cy 0 0"
            expected_boxes["test"] -= 2
        assert {s: c.boxes for s, c in summaries[name].splits.items()} == expected_boxes
    assert summaries["Aquarium"].fix_line() == "Aquarium: fixes: 2 zero-area boxes dropped (test 2)"


def test_a_packages_box_is_the_label_line_in_pixels(imported):
    root, _ = imported
    data = json.loads(get_dataset("Packages").annotation_path("train", root).read_text())
    image = next(i for i in data["images"] if i["file_name"].startswith("IMG_6817_jpg"))
    assert (image["width"], image["height"]) == (1536, 2048)
    # "0 0.5716145833333334 0.73095703125 0.095703125 0.08154296875": cx 878, cy 1497, w 147, h 167
    assert [(a["category_id"], a["bbox"]) for a in data["annotations"] if a["image_id"] == image["id"]] == [
        (1, [804.5, 1413.5, 147.0, 167.0])]


def test_aquarium_empty_label_file_is_an_image_without_boxes(imported):
    root, _ = imported
    data = json.loads(get_dataset("Aquarium").annotation_path("train", root).read_text())
    image = next(i for i in data["images"] if i["file_name"].startswith("IMG_3133_jpeg_jpg"))
    assert not [a for a in data["annotations"] if a["image_id"] == image["id"]]


def test_raccoon_keeps_the_release_split_and_records_the_seeded_valid(imported):
    root, summaries = imported
    spec = get_dataset("Raccoon")

    def listed(split: str) -> set[str]:
        with (ODINW / "Raccoon" / "data" / f"{split}_labels.csv").open() as handle:
            return {row["filename"] for row in csv.DictReader(handle)}

    record = json.loads((spec.folder(root) / RECORD_FILE).read_text())
    files = {s: record["splits"][s]["files"] for s in ("train", "valid", "test")}
    assert set(files["train"]) | set(files["valid"]) == listed("train")
    assert not set(files["train"]) & set(files["valid"])
    assert set(files["test"]) == listed("test")
    assert record["seed"] == 0 and record["made_splits"]["valid"]["images"] == 26
    assert summaries["Raccoon"].made_splits["valid"].fraction == pytest.approx(29 / (150 + 29))
    # raccoon-63 (train CSV): two boxes, VOC corners 74,107,280,290 and 227,93,403,298
    split = "train" if "raccoon-63.jpg" in files["train"] else "valid"
    data = json.loads(spec.annotation_path(split, root).read_text())
    image = next(i for i in data["images"] if i["file_name"] == "raccoon-63.jpg")
    assert (image["width"], image["height"]) == (600, 400)
    assert [a["bbox"] for a in data["annotations"] if a["image_id"] == image["id"]] == [
        [74.0, 107.0, 206.0, 183.0], [227.0, 93.0, 176.0, 205.0]]
    assert (spec.folder(root) / "LICENSE").is_file()
    assert summaries["Raccoon"].notices == ("LICENSE", "README.md")


def test_cli_imports_and_refuses_to_overwrite_without_the_flag(tmp_path, capsys):
    args = ["data", "import", "NorthAmericaMushrooms", "--from", str(ODINW / "NorthAmericaMushrooms"),
            "--root", str(tmp_path), "--seed", "5"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("NorthAmericaMushrooms: imported yolo export ")
    assert out[0].endswith("train 41 images / 67 boxes, valid 5 images / 14 boxes, test 5 images / 9 boxes")
    assert out[1] == "NorthAmericaMushrooms: fixes: none"
    spec = get_dataset("NorthAmericaMushrooms")
    assert json.loads((spec.folder(tmp_path) / RECORD_FILE).read_text())["seed"] == 5
    assert (spec.folder(tmp_path) / "README.roboflow.txt").is_file()
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "already there; pass overwrite=True (--overwrite)" in err and "Traceback" not in err
    assert cli.main([*args, "--overwrite", "--format", "yolo"]) == 0


def test_a_roboflow_coco_export_of_packages_imports_to_the_same_annotations(imported, tmp_path):
    """Re-lay the imported Packages as Roboflow's COCO export (id-0 root, 0-based ids) and import it again."""
    root, _ = imported
    spec = get_dataset("Packages")
    export = tmp_path / "Packages.v6-raw.coco"
    for split in spec.splits:
        data = json.loads(spec.annotation_path(split, root).read_text())
        shutil.copytree(spec.annotation_path(split, root).parent, export / split)
        (export / split / spec.split_files[split].split("/")[-1]).unlink()
        data["categories"] = [{"id": 0, "name": "packages", "supercategory": "none"},
                              {"id": 1, "name": "Package", "supercategory": "packages"}]
        for image in data["images"]:
            image["id"] -= 1
        for ann in data["annotations"]:
            ann["id"] -= 1
            ann["image_id"] -= 1
        (export / split / "_annotations.coco.json").write_text(json.dumps(data))
    summary = import_dataset(spec, export, root=tmp_path / "root")
    assert summary.fmt == "coco" and summary.fixes == {"root_category": 3}
    assert {s: {"images": c.images, "boxes": c.boxes} for s, c in summary.splits.items()} == \
        STATS["Packages"]["splits"]
    for split in spec.splits:
        again = json.loads(spec.annotation_path(split, tmp_path / "root").read_text())
        first = json.loads(spec.annotation_path(split, root).read_text())
        assert again["images"] == first["images"] and again["annotations"] == first["annotations"]
        assert again["categories"] == [{"id": 1, "name": "package", "supercategory": "none"}]
