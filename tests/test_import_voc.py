"""`harness data import` of Pascal VOC exports: both layouts, split lists, seeded made splits, size fixes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from harness.acquire.importers import RECORD_FILE, detect_format, import_dataset
from harness.catalog.datasets import get_dataset, load_split
from scaledet.errors import DataError

RACCOON = get_dataset("Raccoon")  # one class; registry counts 150 / 29 / 17
MUSHROOMS = get_dataset("NorthAmericaMushrooms")


def voc_xml(path: Path, file_name: str, objects: list[tuple[str, tuple[float, ...]]],
            size: tuple[int, int] | None = (40, 30)) -> None:
    size_xml = (f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
                if size else "")
    objs = "".join(f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin>"
                   f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
                   for name, b in objects)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><folder>images</folder><filename>{file_name}</filename>{size_xml}{objs}"
                    "</annotation>")


def make_image(path: Path, size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (20, 40, 60)).save(path)


def flat_export(root: Path, count: int, lists: dict[str, list[int]] | None = None) -> Path:
    """The original Raccoon release's layout: annotations/, images/, data/<split>_labels.csv."""
    for i in range(count):
        make_image(root / "images" / f"r-{i:02d}.jpg")
        voc_xml(root / "annotations" / f"r-{i:02d}.xml", f"r-{i:02d}.jpg",
                [("raccoon", (1, 2, 11 + i % 5, 12))])
    for split, indices in (lists or {}).items():
        rows = "".join(f"r-{i:02d}.jpg,40,30,raccoon,1,2,12,12\n" for i in indices)
        (root / "data").mkdir(exist_ok=True)
        header = "filename,width,height,class,xmin,ymin,xmax,ymax\n"
        (root / "data" / f"{split}_labels.csv").write_text(header + rows)
    return root


def test_roboflow_voc_layout_keeps_pixel_corners(tmp_path):
    src = tmp_path / "src"
    for split, objects in (("train", [("CoW", (2, 3, 12, 13)), ("Chanterelle", (0, 0, 50, 30))]),
                           ("valid", []), ("test", [("cow", (5, 5, 6, 6))])):
        make_image(src / split / f"{split}.jpg")
        voc_xml(src / split / f"{split}.xml", f"{split}.jpg", objects)
    assert detect_format(src) == "voc"
    summary = import_dataset(MUSHROOMS, src, root=tmp_path / "root")
    train = json.loads(MUSHROOMS.annotation_path("train", tmp_path / "root").read_text())
    assert [(a["category_id"], a["bbox"]) for a in train["annotations"]] == [(1, [2.0, 3.0, 10.0, 10.0]),
                                                                           (2, [0.0, 0.0, 40.0, 30.0])]
    assert summary.splits["train"].fixes == {"clipped": 1}
    assert {s: (c.images, c.boxes) for s, c in summary.splits.items()} == {"train": (1, 2), "valid": (1, 0),
                                                                          "test": (1, 1)}
    assert len(load_split(MUSHROOMS, "test", tmp_path / "root").annotations[1]) == 1


def test_voc_without_size_takes_it_from_the_image_and_counts_the_fix(tmp_path):
    src = flat_export(tmp_path / "src", 8, {"train": [0, 1, 2, 3, 4], "valid": [5], "test": [6, 7]})
    make_image(src / "images" / "r-03.jpg", (64, 48))
    voc_xml(src / "annotations" / "r-03.xml", "r-03.jpg", [("raccoon", (1, 2, 60, 47))], size=None)
    voc_xml(src / "annotations" / "r-04.xml", "r-04.jpg", [("raccoon", (1, 2, 3, 4))], size=(0, 0))
    summary = import_dataset(RACCOON, src, root=tmp_path / "root")
    images = json.loads(RACCOON.annotation_path("train", tmp_path / "root").read_text())["images"]
    assert [(i["file_name"], i["width"], i["height"]) for i in images][3:] == [("r-03.jpg", 64, 48),
                                                                             ("r-04.jpg", 40, 30)]
    assert summary.splits["train"].fixes == {"size_from_image": 2}
    assert "2 VOC files without <size> (size read from the image) (train 2)" in summary.fix_line()


def test_missing_valid_is_drawn_from_train_with_the_seed_and_recorded(tmp_path):
    src = flat_export(tmp_path / "src", 24, {"train": list(range(20)), "test": [20, 21, 22, 23]})
    first = import_dataset(RACCOON, src, root=tmp_path / "a", seed=0)
    # the registry's proportion: valid 29 of train+valid 179 -> round(20 * 29 / 179) = 3
    assert first.made_splits["valid"].images == 3
    assert first.made_splits["valid"].fraction == pytest.approx(29 / 179)
    assert {s: c.images for s, c in first.splits.items()} == {"train": 17, "valid": 3, "test": 4}
    record = json.loads((RACCOON.folder(tmp_path / "a") / RECORD_FILE).read_text())
    assert record["seed"] == 0 and record["format"] == "voc"
    assert record["made_splits"] == {"valid": {"from": "train", "fraction": 29 / 179, "images": 3}}
    files = {s: record["splits"][s]["files"] for s in ("train", "valid", "test")}
    assert sorted(files["train"] + files["valid"]) == [f"r-{i:02d}.jpg" for i in range(20)]
    assert files["test"] == [f"r-{i:02d}.jpg" for i in range(20, 24)]
    same = import_dataset(RACCOON, src, root=tmp_path / "b", seed=0)
    other = import_dataset(RACCOON, src, root=tmp_path / "c", seed=1)
    assert same.splits["valid"].files == first.splits["valid"].files
    assert other.splits["valid"].files != first.splits["valid"].files and other.seed == 1
    assert "made split valid from train: 3 images (fraction 0.1620, seed 0)" in "\n".join(first.lines())


def test_without_split_lists_every_image_is_pooled_and_the_registry_proportions_apply(tmp_path):
    src = flat_export(tmp_path / "src", 40)
    summary = import_dataset(RACCOON, src, root=tmp_path / "root")
    # 150 / 29 / 17 of 196: valid round(40 * 29 / 196) = 6, test round(40 * 17 / 196) = 3
    assert {s: c.images for s, c in summary.splits.items()} == {"train": 31, "valid": 6, "test": 3}


def test_image_sets_lists_split_the_images_and_unlisted_ones_are_counted(tmp_path):
    src = flat_export(tmp_path / "src", 6)
    (src / "ImageSets" / "Main").mkdir(parents=True)
    for split, ids in (("train", "r-00\nr-01\nr-02\n"), ("val", "r-03\n"), ("test", "r-04 1\n")):
        (src / "ImageSets" / "Main" / f"{split}.txt").write_text(ids)
    summary = import_dataset(RACCOON, src, root=tmp_path / "root")
    assert {s: c.files for s, c in summary.splits.items()} == {
        "train": ("r-00.jpg", "r-01.jpg", "r-02.jpg"), "valid": ("r-03.jpg",), "test": ("r-04.jpg",)}
    assert summary.fixes == {"unlisted_image": 1}
    assert summary.made_splits == {}


def test_split_list_naming_an_unknown_image_names_the_list_line(tmp_path):
    src = flat_export(tmp_path / "src", 4, {"train": [0, 1], "test": [2, 3]})
    with (src / "data" / "test_labels.csv").open("a") as handle:
        handle.write("r-99.jpg,40,30,raccoon,1,2,3,4\n")
    with pytest.raises(DataError, match=r"test_labels\.csv:4: 'r-99\.jpg' has no XML file"):
        import_dataset(RACCOON, src, root=tmp_path / "root")


def test_bad_bndbox_names_the_xml_and_the_object(tmp_path):
    src = flat_export(tmp_path / "src", 4, {"train": [0, 1, 2], "test": [3]})
    (src / "annotations" / "r-01.xml").write_text(
        "<annotation><filename>r-01.jpg</filename><object><name>raccoon</name><bndbox><xmin>1</xmin>"
        "<ymin>2</ymin><xmax>big</xmax><ymax>4</ymax></bndbox></object></annotation>")
    with pytest.raises(DataError, match=r"r-01\.xml: object 1 \(raccoon\): field 'bndbox/xmax' missing or "):
        import_dataset(RACCOON, src, root=tmp_path / "root")


def test_voc_class_mismatch_names_both_lists(tmp_path):
    src = flat_export(tmp_path / "src", 4, {"train": [0, 1, 2], "test": [3]})
    voc_xml(src / "annotations" / "r-02.xml", "r-02.jpg", [("badger", (1, 1, 5, 5))])
    with pytest.raises(DataError, match=r"\['raccoon', 'badger'\].*\['raccoon'\]"):
        import_dataset(RACCOON, src, root=tmp_path / "root")


def test_voc_image_not_found_names_the_xml(tmp_path):
    src = flat_export(tmp_path / "src", 4, {"train": [0, 1, 2], "test": [3]})
    (src / "images" / "r-02.jpg").unlink()
    with pytest.raises(DataError, match=r"r-02\.xml: image not found \(looked for r-02\.jpg"):
        import_dataset(RACCOON, src, root=tmp_path / "root")
