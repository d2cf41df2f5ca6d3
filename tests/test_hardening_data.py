"""Hardening of annotation reading (issue 8, part 1): every bad COCO json is a ``DataError`` naming the
file and the id / field, or a counted, logged fix. Importer cases already covered elsewhere are cited in
docs/guarantees-data.md (tests/test_import_formats.py, tests/test_import_voc.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_import_formats import PACKAGES, coco_export

from harness.acquire.importers import import_dataset
from scaledet.data import DetectionDataset, check_image_files, load_coco, read_image
from scaledet.errors import DataError

SIZE = (40, 30)


def coco_json(folder: Path, images=None, annotations=None, categories=None, *, files: bool = True,
              text: str | None = None) -> Path:
    """A COCO json in ``folder`` (default: two 40x30 images, classes a=1, b=2 and an empty root id 0)."""
    folder.mkdir(parents=True, exist_ok=True)
    if images is None:
        images = [{"id": 1, "file_name": "one.jpg", "width": 40, "height": 30},
                  {"id": 2, "file_name": "two.jpg", "width": 40, "height": 30}]
    if annotations is None:
        annotations = [{"id": 10, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 8], "iscrowd": 0},
                       {"id": 11, "image_id": 2, "category_id": 2, "bbox": [5, 5, 4, 4], "iscrowd": 0}]
    if categories is None:
        categories = [{"id": 0, "name": "things"}, {"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    if files:
        for image in images:
            if isinstance(image, dict) and isinstance(image.get("file_name"), str):
                Image.new("RGB", SIZE, (90, 120, 30)).save(folder / image["file_name"])
    path = folder / "split.json"
    path.write_text(text if text is not None else
                    json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_valid_file_loads_and_drops_the_empty_root_category(tmp_path):
    data = load_coco(coco_json(tmp_path))
    assert data.category_ids == (1, 2) and data.category_names == ("a", "b")
    assert [a["id"] for a in data.annotations[1]] == [10]


def test_malformed_json_names_the_file_and_line(tmp_path):
    path = coco_json(tmp_path, text='{"images": [\n  {"id": 1,}\n], "annotations": [], "categories": []}')
    with pytest.raises(DataError, match=r"split\.json: .*line 2 column"):
        load_coco(path)


@pytest.mark.parametrize(("text", "expected"), [
    ("[]", "expected a COCO object"),
    ('{"images": {}, "annotations": [], "categories": []}', "field 'images' missing or not a list"),
    ("", "Expecting value: line 1 column 1"),
    ("\xff\xfe", "cannot read COCO annotations"),
])
def test_json_that_is_not_a_coco_object_names_the_file(tmp_path, text, expected):
    path = coco_json(tmp_path, text=text)
    with pytest.raises(DataError, match=expected) as error:
        load_coco(path)
    assert str(path) in str(error.value)


def test_empty_split_names_the_file(tmp_path):
    path = coco_json(tmp_path, images=[], annotations=[])
    with pytest.raises(DataError, match=r"split\.json: field 'images' is empty"):
        load_coco(path)


def test_duplicate_image_id_names_the_id(tmp_path):
    images = [{"id": 1, "file_name": "one.jpg"}, {"id": 2, "file_name": "two.jpg"},
              {"id": 1, "file_name": "three.jpg"}]
    with pytest.raises(DataError, match=r"split\.json: image 1: image id appears twice \(images\[2\]\)"):
        load_coco(coco_json(tmp_path, images=images))


@pytest.mark.parametrize(("change", "expected"), [
    ({"image_id": 7}, r"annotation 11: image_id 7 is not an image id of the file"),
    ({"category_id": 5}, r"annotation 11: category_id 5 is not a category id of the file"),
    ({"category_id": 0}, r"annotation 11: category_id 0 is not a category id"),  # the dropped root
    ({"category_id": [1]}, r"annotation 11: category_id \[1\] is not a category id"),
    ({"image_id": "1"}, r"annotation 11: image_id '1' is not an image id"),
])
def test_annotation_with_unknown_image_or_category_names_the_annotation(tmp_path, change, expected):
    annotations = [{"id": 11, "image_id": 2, "category_id": 2, "bbox": [5, 5, 4, 4], **change}]
    if change.get("category_id") == 0:  # a root category in use is kept: make it absent instead
        categories = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    else:
        categories = None
    with pytest.raises(DataError, match=expected):
        load_coco(coco_json(tmp_path, annotations=annotations, categories=categories))


@pytest.mark.parametrize("bbox", [
    "NaN", "Infinity", "-Infinity", "[1, 2, 3]", "[1, 2, 3, 4, 5]", '"1,2,3,4"', '[1, 2, "3", 4]',
    "[true, 2, 3, 4]", "null", "[1, 2, NaN, 4]", "[1, Infinity, 3, 4]", "{}",
])
def test_bbox_not_four_finite_numbers_names_annotation_and_field(tmp_path, bbox):
    text = ('{"images": [{"id": 1, "file_name": "one.jpg"}], "categories": [{"id": 1, "name": "a"}], '
            f'"annotations": [{{"id": 3, "image_id": 1, "category_id": 1, "bbox": {bbox}}}]}}')
    with pytest.raises(DataError, match=r"split\.json: annotation 3: field 'bbox' must be a list of 4 finite"):
        load_coco(coco_json(tmp_path, text=text))


def test_degenerate_and_outside_boxes_are_dropped_and_clipped_counted_once(tmp_path, caplog):
    boxes = {20: [1, 2, 0, 8],        # zero width: dropped
             21: [1, 2, 10, -3],      # negative height: dropped
             22: [-5, 25, 20, 10],    # x -5..15 -> 0..15, y 25..35 -> 25..30: clipped
             23: [50, 2, 5, 5],       # right of the 40 px image: dropped
             24: [1, 2, 10, 8]}       # kept as is
    annotations = [{"id": k, "image_id": 1, "category_id": 1, "bbox": v} for k, v in boxes.items()]
    with caplog.at_level(logging.WARNING, logger="scaledet"):
        data = load_coco(coco_json(tmp_path, annotations=annotations))
    lines = [r.getMessage() for r in caplog.records if "split.json" in r.getMessage()]
    assert lines == [(f"{tmp_path / 'split.json'}: 1 boxes clipped to the image, 2 boxes with zero or negative "
                     "width/height dropped from the training targets, 1 boxes outside the image dropped from "
                     "the training targets, 1 Roboflow id-0 root category without boxes dropped (training "
                     "targets; evaluation uses the boxes as written)")]
    assert [(a["id"], a["bbox"]) for a in data.annotations[1]] == [(22, [0.0, 25.0, 15.0, 5.0]),
                                                                     (24, [1, 2, 10, 8])]
    assert [a["bbox"] for a in data.source["annotations"]] == list(boxes.values())  # evaluation: as written
    target = DetectionDataset([data], [{1: 0, 2: 1}], None)[0][1]
    assert target["boxes"].tolist() == [[0.0, 25.0, 15.0, 30.0], [1.0, 2.0, 11.0, 10.0]]


def test_a_clean_file_logs_no_fix(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="scaledet"):
        load_coco(coco_json(tmp_path, categories=[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]))
    assert not caplog.records


def test_duplicate_category_names_and_ids_name_both_ids(tmp_path, caplog):
    same_name = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "a"}]
    with pytest.raises(DataError, match=r"split\.json: category name 'a' is used by ids 1 and 3"):
        load_coco(coco_json(tmp_path, categories=same_name))
    # whitespace twins are two classes with one text (GLIP's boggleBoards: 'o' and 'o '): kept, with a warning
    twins = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "a "}]
    with caplog.at_level(logging.WARNING, logger="scaledet"):
        loaded = load_coco(coco_json(tmp_path / "twins", categories=twins))
    assert loaded.category_names == ("a", "b", "a ")
    assert "'a' (id 1) and 'a ' (id 3) differ only by whitespace" in caplog.text
    same_id = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 2, "name": "c"}]
    with pytest.raises(DataError, match=r"split\.json: category id 2 appears twice \('b' and 'c'\)"):
        load_coco(coco_json(tmp_path, categories=same_id))


def test_roboflow_root_category_dropped_without_boxes_kept_with_boxes(tmp_path):
    assert load_coco(coco_json(tmp_path / "absent", categories=[{"id": 1, "name": "a"},
                                                                {"id": 2, "name": "b"}])).category_ids == (1, 2)
    assert load_coco(coco_json(tmp_path / "empty")).category_ids == (1, 2)
    used = [{"id": 10, "image_id": 1, "category_id": 0, "bbox": [1, 2, 10, 8]}]
    kept = load_coco(coco_json(tmp_path / "used", annotations=used))
    assert kept.category_ids == (0, 1, 2) and kept.category_names == ("things", "a", "b")


def test_missing_image_file_loads_but_check_image_files_names_it(tmp_path):
    path = coco_json(tmp_path)
    (tmp_path / "two.jpg").unlink()
    data = load_coco(path)  # annotations only: no image is opened at load time
    message = rf"image 2: file {tmp_path / 'two.jpg'} not found"
    with pytest.raises(DataError, match=message):
        check_image_files(data)
    with pytest.raises(DataError, match=message):
        load_coco(path, check_files=True)
    with pytest.raises(DataError, match=rf"image file {tmp_path / 'two.jpg'} not found"):
        DetectionDataset([data], [{1: 0, 2: 1}], None)[1]  # at read time: still names the file


def test_check_image_files_reports_every_bad_file_and_size_mismatch(tmp_path):
    path = coco_json(tmp_path, images=[{"id": i, "file_name": f"{i}.jpg", "width": 40, "height": 30}
                                       for i in range(1, 5)], annotations=[])
    (tmp_path / "1.jpg").unlink()
    (tmp_path / "2.jpg").write_bytes(b"")
    Image.new("RGB", (30, 40)).save(tmp_path / "3.jpg")
    with pytest.raises(DataError) as error:
        load_coco(path, check_files=True)
    message = str(error.value)
    assert message.startswith("split (")
    assert "3 image files are missing or unreadable" in message
    assert f"image 1: file {tmp_path / '1.jpg'} not found" in message
    assert f"image 2: file {tmp_path / '2.jpg'} is empty (0 bytes)" in message
    assert f"image 3: file {tmp_path / '3.jpg'} is 30x40 (after EXIF rotation) but the json says 40x30" in message


def test_check_image_files_decode_catches_a_truncated_file(tmp_path):
    path = coco_json(tmp_path, annotations=[])
    noisy = Image.effect_noise((40, 30), 60).convert("RGB")
    noisy.save(tmp_path / "two.jpg", quality=95)
    data = (tmp_path / "two.jpg").read_bytes()
    (tmp_path / "two.jpg").write_bytes(data[: len(data) // 2])
    check_image_files(load_coco(path))  # the header is intact
    with pytest.raises(DataError, match=r"image 2: cannot decode image .*two\.jpg: image file is truncated"):
        check_image_files(load_coco(path), decode=True)


def test_iscrowd_must_be_0_or_1_and_crowd_boxes_are_not_training_targets(tmp_path):
    crowd = [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 8], "iscrowd": 1}]
    assert load_coco(coco_json(tmp_path / "ok", annotations=crowd)).annotations[1] == ()
    with pytest.raises(DataError, match=r"annotation 5: field 'iscrowd' must be 0 or 1, got 'yes'"):
        load_coco(coco_json(tmp_path / "bad", annotations=[{**crowd[0], "iscrowd": "yes"}]))


def test_image_records_need_integer_ids_file_names_and_positive_sizes(tmp_path):
    with pytest.raises(DataError, match=r"images\[0\] needs an integer 'id'"):
        load_coco(coco_json(tmp_path, images=[{"id": "x", "file_name": "a.jpg"}], annotations=[]))
    with pytest.raises(DataError, match=r"image 1: field 'file_name' must be a non-empty string"):
        load_coco(coco_json(tmp_path, images=[{"id": 1, "file_name": 3}], annotations=[]))
    with pytest.raises(DataError, match=r"image 1: field 'width' must be a positive number, got -4"):
        load_coco(coco_json(tmp_path, images=[{"id": 1, "file_name": "a.jpg", "width": -4}], annotations=[]))


# --- importers: the cases not already covered by tests/test_import_formats.py ------------------------

def test_importer_refuses_duplicate_category_names_and_ids(tmp_path):
    source = coco_export(tmp_path / "names", [(1, "package"), (2, "package")], {"train": [("x.jpg", [])]})
    with pytest.raises(DataError, match=r"_annotations\.coco\.json: category name 'package' is used by ids 1 and 2"):
        import_dataset(PACKAGES, source, root=tmp_path / "root")
    source = coco_export(tmp_path / "ids", [(1, "package"), (1, "box")], {"train": [("x.jpg", [])]})
    with pytest.raises(DataError, match=r"_annotations\.coco\.json: category id 1 appears twice"):
        import_dataset(PACKAGES, source, root=tmp_path / "root")


def test_importer_refuses_duplicate_image_ids(tmp_path):
    source = coco_export(tmp_path / "src", [(1, "package")], {"train": [("x.jpg", []), ("y.jpg", [])]})
    path = source / "train" / "_annotations.coco.json"
    data = json.loads(path.read_text())
    data["images"][1]["id"] = data["images"][0]["id"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"_annotations\.coco\.json: image id 0 appears twice"):
        import_dataset(PACKAGES, source, root=tmp_path / "root")


def test_importer_malformed_json_names_file_and_line(tmp_path):
    source = coco_export(tmp_path / "src", [(1, "package")], {"train": [("x.jpg", [])]})
    (source / "train" / "_annotations.coco.json").write_text('{"images": [\n,]}')
    with pytest.raises(DataError, match=r"cannot read COCO annotations .*_annotations\.coco\.json: .*line 2"):
        import_dataset(PACKAGES, source, root=tmp_path / "root")


def test_degenerate_box_is_never_a_training_target_even_without_image_size(tmp_path):
    images = [{"id": 1, "file_name": "one.jpg"}]
    annotations = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [3, 3, 0, 5]},
                   {"id": 2, "image_id": 1, "category_id": 1, "bbox": [3, 3, 5, 5]}]
    data = load_coco(coco_json(tmp_path, images=images, annotations=annotations))
    image, target = DetectionDataset([data], [{1: 0, 2: 1}], None)[0]
    assert image.shape == (3, 30, 40)
    assert torch.equal(target["boxes"], torch.tensor([[3.0, 3.0, 8.0, 8.0]]))
    assert read_image(tmp_path / "one.jpg").shape == (3, 30, 40)
