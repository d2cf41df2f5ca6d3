"""OpenImages CSV -> COCO conversion: boxes, iscrowd, image-level labels, unknown MIDs, cache."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from upstream_fixtures import BOX_HEADER, box_row, make_openimages, write_csv

from harness.catalog.openimages import convert_openimages
from harness.catalog.upstream_labels import upstream_classes
from scaledet.errors import DataError

PERSON_ID = 69  # row of /m/01g317 in class-descriptions-boxable.csv


def _convert(root: Path, out: Path, **kwargs):
    return convert_openimages(root / "validation-annotations-bbox.csv", out, image_dir=root / "validation",
                              image_labels=root / "validation-annotations-human-imagelabels-boxable.csv",
                              class_csv=root / "class-descriptions-boxable.csv", **kwargs)


def test_boxes_iscrowd_labels_and_unknown_mids(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "oi"
    make_openimages(root)
    with caplog.at_level(logging.WARNING, logger="harness.catalog.openimages"):
        result = _convert(root, tmp_path / "out")
    assert not result.cached and result.unknown_mids == {"/m/not_a_class": 1}
    assert "1 rows with MIDs not in the class list skipped: /m/not_a_class (1)" in caplog.text
    data = json.loads(result.path.read_text())
    assert (result.images, result.annotations) == (3, 3) == (len(data["images"]), len(data["annotations"]))
    images = {img["openimages_id"]: img for img in data["images"]}
    first, second, third = images["0001eeaf4aed83f9"], images["000595fe6fee6369"], images["00075905539074f2"]
    assert (first["width"], first["height"], second["width"], second["height"]) == (200, 100, 80, 160)
    assert first["file_name"] == "0001eeaf4aed83f9.jpg"
    boxes = [(a["image_id"], a["category_id"], a["bbox"], a["iscrowd"]) for a in data["annotations"]]
    assert boxes == [
        (first["id"], 1, [20.0, 20.0, 80.0, 40.0], 0),  # x 0.1..0.5 of 200, y 0.2..0.6 of 100
        (first["id"], PERSON_ID, [0.0, 0.0, 200.0, 100.0], 1),  # IsGroupOf 1
        (second["id"], PERSON_ID, [20.0, 80.0, 40.0, 80.0], 0),  # x .25..75 of 80, y .5..1 of 160
    ]
    assert data["annotations"][0]["area"] == 3200.0
    assert (first["pos_category_ids"], first["neg_category_ids"]) == ([PERSON_ID], [])
    assert (second["pos_category_ids"], second["neg_category_ids"]) == ([], [1])
    assert third["neg_category_ids"] == [PERSON_ID]  # verified negatives only, no boxes: kept
    assert len(data["categories"]) == 601 and data["categories"][0] == {"id": 1, "name": "Tortoise",
                                                                         "mid": upstream_classes("openimages")[0].mid}


def test_a_rerun_is_a_cache_hit_and_a_changed_input_is_not(tmp_path: Path) -> None:
    root = tmp_path / "oi"
    make_openimages(root)
    first = _convert(root, tmp_path / "out")
    stamp = first.path.stat().st_mtime_ns
    (root / "validation" / "0001eeaf4aed83f9.jpg").unlink()  # a real run would need it: the cache does not
    again = _convert(root, tmp_path / "out")
    assert again.cached and again.path == first.path and again.path.stat().st_mtime_ns == stamp
    assert (again.images, again.annotations, again.unknown_mids) == (3, 3, {"/m/not_a_class": 1})
    csv_path = root / "validation-annotations-bbox.csv"
    with csv_path.open("a", newline="") as stream:
        stream.write(",".join(map(str, box_row("000595fe6fee6369", "/m/01g317", 0, 0.5, 0, 0.5))) + "\n")
    with pytest.raises(DataError, match="0001eeaf4aed83f9.jpg"):  # re-converted: reads image headers again
        _convert(root, tmp_path / "out")


def test_sizes_from_a_csv_and_bad_input(tmp_path: Path) -> None:
    sizes = write_csv(tmp_path / "sizes.csv", ["ImageID", "Width", "Height"], [["a", 1000, 500]])
    boxes = write_csv(tmp_path / "boxes.csv", BOX_HEADER, [box_row("a", "/m/01g317", 0.5, 0.75, 0.1, 0.3)])
    result = convert_openimages(boxes, tmp_path / "out", image_sizes=sizes)
    ann = json.loads(result.path.read_text())["annotations"][0]
    assert ann["bbox"] == pytest.approx([500.0, 50.0, 250.0, 100.0])
    bad = write_csv(tmp_path / "bad.csv", BOX_HEADER, [box_row("a", "/m/01g317", "x", 0.75, 0.1, 0.3)])
    with pytest.raises(DataError, match=r"bad.csv:2: column XMin: expected a number, got 'x'"):
        convert_openimages(bad, tmp_path / "out", image_sizes=sizes)
    short = write_csv(tmp_path / "short.csv", ["ImageID", "LabelName"], [["a", "/m/01g317"]])
    with pytest.raises(DataError, match="missing column\\(s\\) XMin, XMax, YMin, YMax, IsGroupOf"):
        convert_openimages(short, tmp_path / "out", image_sizes=sizes)
    classes = write_csv(tmp_path / "classes.csv", None, [["/m/x", "X"]])
    with pytest.raises(DataError, match="1 classes, expected the 601 OpenImages v6 boxable classes"):
        convert_openimages(boxes, tmp_path / "out", image_sizes=sizes, class_csv=classes)
    assert not [p for p in os.listdir(tmp_path / "out") if p.endswith(".tmp")]
