"""`harness data import` on small hand-made COCO / YOLO exports: each rule with exact expected values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from harness.acquire.images import CACHE_NAME
from harness.acquire.importers import RECORD_FILE, detect_format, import_dataset, writer
from harness.catalog.datasets import ANNOTATION_FILE, get_dataset, load_split
from scaledet.errors import ConfigError, DataError

PACKAGES = get_dataset("Packages")  # one class: package
MUSHROOMS = get_dataset("NorthAmericaMushrooms")  # ids 1 CoW, 2 chanterelle


def make_image(path: Path, size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 30)).save(path)


def yolo_export(root: Path, names: list[str], splits: dict[str, dict[str, str | None]],
                size: tuple[int, int] = (40, 30)) -> Path:
    """``splits``: split -> image stem -> label file text (``None``: no label file)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(yaml.safe_dump({"nc": len(names), "names": names}))
    for split, images in splits.items():
        for stem, text in images.items():
            make_image(root / split / "images" / f"{stem}.jpg", size)
            (root / split / "labels").mkdir(parents=True, exist_ok=True)
            if text is not None:
                (root / split / "labels" / f"{stem}.txt").write_text(text)
    return root


def coco_export(root: Path, categories: list[tuple[int, str]], splits: dict[str, list[tuple[str, list]]],
                size: tuple[int, int] = (40, 30), root_category: str | None = "things") -> Path:
    """Roboflow COCO layout; ``splits``: split -> [(file name, [(category id, [x, y, w, h]), ...])]."""
    cats = ([{"id": 0, "name": root_category, "supercategory": "none"}] if root_category else [])
    cats += [{"id": cid, "name": name, "supercategory": root_category or "none"} for cid, name in categories]
    for split, images in splits.items():
        entries, anns = [], []
        for index, (file_name, boxes) in enumerate(images):
            make_image(root / split / file_name, size)
            entries.append({"id": index, "file_name": file_name, "width": size[0], "height": size[1]})
            anns += [{"id": len(anns), "image_id": index, "category_id": cid, "bbox": bbox, "area": 0,
                      "iscrowd": 0, "segmentation": []} for cid, bbox in boxes]
        (root / split / "_annotations.coco.json").write_text(
            json.dumps({"images": entries, "annotations": anns, "categories": cats}))
    return root


def written(spec, split: str, root: Path) -> dict:
    return json.loads(spec.annotation_path(split, root).read_text())


THREE_SPLITS = {"train": {"a": "0 0.5 0.5 0.5 0.5\n"}, "valid": {"b": "0 0.5 0.5 0.2 0.2\n"},
                "test": {"c": "0 0.5 0.5 0.2 0.2\n"}}


# --- YOLO ---------------------------------------------------------------------------------------------

def test_yolo_boxes_become_pixels_with_registry_ids_and_load_split_reads_them(tmp_path):
    source = yolo_export(tmp_path / "src", ["chanterelle", "CoW"], {
        "train": {"a": "0 0.5 0.5 0.5 0.5\n1 0.25 0.5 0.5 1.0\n"}, "valid": {"b": ""}, "test": {"c": ""}})
    summary = import_dataset(MUSHROOMS, source, "yolo", root=tmp_path / "root")
    data = written(MUSHROOMS, "train", tmp_path / "root")
    assert data["categories"] == [{"id": 1, "name": "CoW", "supercategory": "none"},
                                  {"id": 2, "name": "chanterelle", "supercategory": "none"}]
    assert data["images"] == [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}]
    # source class 0 is chanterelle (registry id 2), class 1 is CoW (id 1); 40x30 image
    assert [(a["category_id"], a["bbox"]) for a in data["annotations"]] == [(2, [10.0, 7.5, 20.0, 15.0]),
                                                                          (1, [0.0, 0.0, 20.0, 30.0])]
    assert (MUSHROOMS.annotation_path("train", tmp_path / "root").parent / "a.jpg").is_file()
    assert summary.fmt == "yolo" and summary.seed == 0 and summary.fixes == {}
    assert {s: (c.images, c.boxes) for s, c in summary.splits.items()} == {"train": (1, 2), "valid": (1, 0),
                                                                          "test": (1, 0)}
    loaded = load_split(MUSHROOMS, "train", tmp_path / "root")
    assert loaded.category_ids == (1, 2) and len(loaded.annotations[1]) == 2
    assert loaded.image_root / loaded.images[0]["file_name"] == loaded.image_root / "a.jpg"


def test_empty_label_files_are_kept_as_images_without_objects(tmp_path):
    source = yolo_export(tmp_path / "src", ["package"], {
        "train": {"a": "0 0.5 0.5 0.5 0.5\n", "empty": "", "blank": "\n  \n"}, "valid": {"b": ""},
        "test": {"c": ""}})
    summary = import_dataset(PACKAGES, source, root=tmp_path / "root")
    data = written(PACKAGES, "train", tmp_path / "root")
    assert [i["file_name"] for i in data["images"]] == ["a.jpg", "blank.jpg", "empty.jpg"]
    assert len(data["annotations"]) == 1 and summary.splits["train"].images == 3
    assert summary.fixes == {}  # an empty label file is not a fix


def test_image_without_label_file_is_kept_and_reported(tmp_path):
    source = yolo_export(tmp_path / "src", ["package"],
                         {**THREE_SPLITS, "train": {"a": None, "b": "0 .5 .5 .1 .1"}})
    (source / "train" / "labels" / "stray.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    summary = import_dataset(PACKAGES, source, root=tmp_path / "root")
    assert summary.splits["train"].images == 2
    assert summary.splits["train"].fixes == {"no_label_file": 1, "orphan_label": 1}
    line = summary.fix_line()
    assert "1 images without a label file (kept as images with no objects) (train 1)" in line
    assert "1 label files without an image (skipped) (train 1)" in line


def test_boxes_are_clipped_and_zero_area_boxes_dropped_and_counted(tmp_path):
    # 40x30 image: box 1 inside; box 2 sticks out left/top -> clipped; box 3 has zero width -> dropped;
    # box 4 lies wholly right of the image -> zero area after clipping -> dropped
    labels = "0 0.5 0.5 0.5 0.5\n0 0.1 0.1 0.4 0.4\n0 0.5 0.5 0 0.3\n0 1.5 0.5 0.2 0.2\n"
    source = yolo_export(tmp_path / "src", ["package"], {**THREE_SPLITS, "train": {"a": labels}})
    summary = import_dataset(PACKAGES, source, root=tmp_path / "root")
    bboxes = [a["bbox"] for a in written(PACKAGES, "train", tmp_path / "root")["annotations"]]
    # box 2: cx 4, cy 3, w 16, h 12 -> x -4..12, y -3..9 -> clipped to 0..12, 0..9
    assert bboxes == [[10.0, 7.5, 20.0, 15.0], pytest.approx([0.0, 0.0, 12.0, 9.0])]
    assert summary.splits["train"].fixes == {"clipped": 1, "zero_area": 2}
    assert summary.splits["train"].boxes == 2
    assert summary.fix_line() == ("Packages: fixes: 1 boxes clipped to the image (train 1); "
                                  "2 zero-area boxes dropped (train 2)")


@pytest.mark.parametrize(("line", "expected"), [
    ("0 0.5 0.5 0.5", "expected 5 fields 'class cx cy w h', got 4"),
    ("0 0.5 0.5 0.5 0.5 0.1", "expected 5 fields 'class cx cy w h', got 6"),
    ("3 0.5 0.5 0.5 0.5", "class id 3 out of range"),
    ("-1 0.5 0.5 0.5 0.5", "class id -1 out of range"),
    ("fish 0.5 0.5 0.5 0.5", "expected a class id and 4 numbers"),
])
def test_bad_yolo_line_names_file_and_line(tmp_path, line, expected):
    source = yolo_export(tmp_path / "src", ["chanterelle", "CoW"],
                         {**THREE_SPLITS, "valid": {"b": f"0 0.5 0.5 0.2 0.2\n\n{line}\n"}})
    with pytest.raises(DataError) as error:
        import_dataset(MUSHROOMS, source, root=tmp_path / "root")
    message = str(error.value)
    assert f"{source / 'valid' / 'labels' / 'b.txt'}:3: " in message and expected in message
    assert not (tmp_path / "root").exists()  # nothing is written before the source is read


def test_class_mismatch_names_both_lists(tmp_path):
    source = yolo_export(tmp_path / "src", ["CoW", "porcini"], THREE_SPLITS)
    with pytest.raises(DataError) as error:
        import_dataset(MUSHROOMS, source, root=tmp_path / "root")
    message = str(error.value)
    assert "['CoW', 'porcini']" in message and "['CoW', 'chanterelle']" in message
    assert str(source / "data.yaml") in message


def test_class_names_match_case_insensitively(tmp_path):
    source = yolo_export(tmp_path / "src", ["COW", "Chanterelle"], THREE_SPLITS)
    import_dataset(MUSHROOMS, source, root=tmp_path / "root")
    categories = written(MUSHROOMS, "train", tmp_path / "root")["categories"]
    assert [c["name"] for c in categories] == ["CoW", "chanterelle"]
    assert written(MUSHROOMS, "train", tmp_path / "root")["annotations"][0]["category_id"] == 1


def test_data_yaml_nc_must_match_names(tmp_path):
    source = yolo_export(tmp_path / "src", ["package"], THREE_SPLITS)
    (source / "data.yaml").write_text("nc: 2\nnames: ['package']\n")
    with pytest.raises(DataError, match=r"data\.yaml: field 'nc' is 2 but 'names' lists 1 classes"):
        import_dataset(PACKAGES, source, root=tmp_path / "root")


# --- COCO ---------------------------------------------------------------------------------------------

def test_coco_root_category_is_dropped_and_ids_follow_the_registry(tmp_path):
    # Roboflow: id 0 is the project (no boxes); ids 1, 2 in the source's order (not the registry's)
    source = coco_export(tmp_path / "src", [(1, "chanterelle"), (2, "CoW")], {
        "train": [("x.jpg", [(1, [1, 2, 10, 5]), (2, [0, 0, 40, 30])]), ("y.jpg", [])],
        "valid": [("v.jpg", [(2, [30, 20, 20, 20])])], "test": [("t.jpg", [(1, [5, 5, 0, 3])])]})
    summary = import_dataset(MUSHROOMS, source, root=tmp_path / "root")
    assert summary.fmt == "coco"
    train = written(MUSHROOMS, "train", tmp_path / "root")
    assert [c["id"] for c in train["categories"]] == [1, 2]
    assert [(a["image_id"], a["category_id"], a["bbox"]) for a in train["annotations"]] == [
        (1, 2, [1.0, 2.0, 10.0, 5.0]), (1, 1, [0.0, 0.0, 40.0, 30.0])]
    assert [i["file_name"] for i in train["images"]] == ["x.jpg", "y.jpg"]
    valid = written(MUSHROOMS, "valid", tmp_path / "root")
    assert valid["annotations"][0]["bbox"] == [30.0, 20.0, 10.0, 10.0]
    assert {s: dict(c.fixes) for s, c in summary.splits.items()} == {
        "train": {"root_category": 1}, "valid": {"root_category": 1, "clipped": 1},
        "test": {"root_category": 1, "zero_area": 1}}
    for split in ("train", "valid", "test"):
        load_split(MUSHROOMS, split, tmp_path / "root")


def test_coco_root_category_with_boxes_is_a_class_and_must_match(tmp_path):
    source = coco_export(tmp_path / "src", [(1, "package")], {
        split: [("x.jpg", [(0, [1, 1, 5, 5])])] for split in ("train", "valid", "test")})
    with pytest.raises(DataError, match=r"\['things', 'package'\].*\['package'\]"):
        import_dataset(PACKAGES, source, root=tmp_path / "root")


def test_coco_missing_image_file_names_json_and_image(tmp_path):
    source = coco_export(tmp_path / "src", [(1, "package")],
                         {s: [("x.jpg", [(1, [1, 1, 5, 5])])] for s in ("train", "valid", "test")})
    (source / "valid" / "x.jpg").unlink()
    with pytest.raises(DataError, match=r"valid/_annotations\.coco\.json: image 0: file .*x\.jpg not found"):
        import_dataset(PACKAGES, source, root=tmp_path / "root")


def test_coco_bad_bbox_names_the_annotation(tmp_path):
    source = coco_export(tmp_path / "src", [(1, "package")],
                         {s: [("x.jpg", [(1, [1, 1, 5])])] for s in ("train", "valid", "test")})
    with pytest.raises(DataError, match=r"_annotations\.coco\.json: annotation 0: field 'bbox' must be 4"):
        import_dataset(PACKAGES, source, root=tmp_path / "root")


# --- format detection, layout, atomicity ------------------------------------------------------------------

def test_auto_detects_each_format_and_fails_clearly_otherwise(tmp_path):
    assert detect_format(yolo_export(tmp_path / "y", ["package"], THREE_SPLITS)) == "yolo"
    assert detect_format(coco_export(tmp_path / "c", [(1, "package")], {"train": [("x.jpg", [])]})) == "coco"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot tell the export format .*pass --format"):
        detect_format(tmp_path / "empty")
    with pytest.raises(DataError, match="not a folder"):
        detect_format(tmp_path / "nowhere")
    both = coco_export(tmp_path / "y", [(1, "package")], {"train": [("x.jpg", [])]})
    with pytest.raises(DataError, match=r"several formats \(coco, yolo\)"):
        detect_format(both)


def test_missing_source_folder_is_a_data_error_for_every_format(tmp_path):
    for fmt in ("coco", "yolo", "voc", "auto"):
        with pytest.raises(DataError, match="nowhere: not a folder"):
            import_dataset(PACKAGES, tmp_path / "nowhere", fmt, root=tmp_path / "root")


def test_unknown_format_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown format 'yml'; valid: coco, voc, yolo"):
        import_dataset(PACKAGES, tmp_path, "yml", root=tmp_path / "root")


def test_existing_dataset_needs_overwrite_and_failed_import_leaves_nothing(tmp_path, monkeypatch):
    root = tmp_path / "root"
    source = yolo_export(tmp_path / "src", ["package"], THREE_SPLITS)
    first = import_dataset(PACKAGES, source, root=root)
    assert first.folder == PACKAGES.folder(root) and PACKAGES.is_present(root)
    with pytest.raises(DataError, match="already there; pass overwrite=True"):
        import_dataset(PACKAGES, source, root=root)
    # an unreadable image is refused before anything is written; a crash while writing (disk full) leaves
    # the old dataset and no temporary folder
    (source / "test" / "images" / "c.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"1 image file does not decode: cannot decode image .*c\.jpg"):
        import_dataset(PACKAGES, source, root=root, overwrite=True)
    make_image(source / "test" / "images" / "c.jpg")

    def disk_full(*args) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "_copy", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        import_dataset(PACKAGES, source, root=root, overwrite=True)
    monkeypatch.undo()
    assert sorted(p.name for p in PACKAGES.folder(root).parent.iterdir()) == [PACKAGES.variant]
    record = json.loads((PACKAGES.folder(root) / RECORD_FILE).read_text())
    assert record["splits"]["test"]["files"] == ["c.jpg"]
    (source / "test" / "images" / "d.jpg").write_bytes((source / "test" / "images" / "c.jpg").read_bytes())
    again = import_dataset(PACKAGES, source, root=root, overwrite=True)
    assert again.splits["test"].images == 2
    assert sorted(p.name for p in PACKAGES.folder(root).parent.iterdir()) == [PACKAGES.variant]


def test_split_folder_layout_is_glip_s(tmp_path):
    source = yolo_export(tmp_path / "src", ["package"], THREE_SPLITS)
    import_dataset(PACKAGES, source, root=tmp_path / "root")
    folder = tmp_path / "root" / "odinw" / "Packages" / "Raw"
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == sorted([
        RECORD_FILE, f"test/{ANNOTATION_FILE}", "test/c.jpg", f"train/{ANNOTATION_FILE}", "train/a.jpg",
        f"valid/{ANNOTATION_FILE}", "valid/b.jpg", *(f"{split}/{CACHE_NAME}" for split in THREE_SPLITS)])


def test_ultralytics_layout_and_val_folder_name(tmp_path):
    src = tmp_path / "src"
    (src).mkdir()
    (src / "data.yaml").write_text("names: {0: package}\n")
    for split, text in (("train", "0 0.5 0.5 0.5 0.5\n"), ("val", ""), ("test", "0 0.5 0.5 0.1 0.1\n")):
        make_image(src / "images" / split / f"{split}.png")
        (src / "labels" / split).mkdir(parents=True)
        (src / "labels" / split / f"{split}.txt").write_text(text)
    assert detect_format(src) == "yolo"
    summary = import_dataset(PACKAGES, src, root=tmp_path / "root")
    assert {s: (c.images, c.boxes, c.files) for s, c in summary.splits.items()} == {
        "train": (1, 1, ("train.png",)), "valid": (1, 0, ("val.png",)), "test": (1, 1, ("test.png",))}
