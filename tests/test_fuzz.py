"""Fuzzing (issue 8, part 7): random COCO json, YOLO label files / data.yaml and VOC XML through the
importers and ``load_coco``, random ground truth and detections through ``coco_eval``. Whatever the input,
the only exceptions allowed are the documented ones (``ScaleDetError`` subclasses), and an importer's or loader's
error names the folder or file at fault. Valid inputs (generated too) must be accepted whole, with the right
counts: an importer that rejected everything would fail here."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from harness.acquire.importers import import_dataset
from harness.catalog.datasets import get_dataset
from scaledet.data import DetectionDataset, load_coco
from scaledet.errors import ScaleDetError
from scaledet.evaluation import coco_eval

PACKAGES = get_dataset("Packages")  # one class: package (id 1)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies -----------------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(-2, 4) | st.integers() | st.text(max_size=6)
           | st.floats(allow_nan=True, allow_infinity=True))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
ids = st.integers(-1, 3) | st.sampled_from([True, "1", 1.0, None, [1]])
numbers = (st.floats(-50, 100) | st.integers(-5, 60) | st.sampled_from([float("nan"), float("inf"), 1e308])
           | st.sampled_from([True, "3", None]))
bboxes = st.lists(numbers, min_size=3, max_size=5) | st.lists(numbers, min_size=4, max_size=4) | json_values


def maybe(strategy: st.SearchStrategy, key: str) -> st.SearchStrategy:
    """``{key: value}`` or nothing."""
    return st.just({}) | strategy.map(lambda value: {key: value})


image_records = st.builds(lambda *parts: {k: v for part in parts for k, v in part.items()},
                          maybe(ids, "id"), maybe(st.sampled_from(["x.jpg", "y.png", "missing.jpg", "", "../x.jpg",
                                                                   "a\x00.jpg", "sub/x.jpg", 3]), "file_name"),
                          maybe(st.integers(-1, 50) | numbers, "width"), maybe(st.integers(-1, 50) | numbers, "height"))
annotation_records = st.builds(lambda *parts: {k: v for part in parts for k, v in part.items()},
                               maybe(ids, "id"), maybe(ids, "image_id"), maybe(ids, "category_id"),
                               maybe(bboxes, "bbox"), maybe(st.sampled_from([0, 1, True, "no", 2]), "iscrowd"),
                               maybe(numbers, "area"))
category_records = st.builds(lambda *parts: {k: v for part in parts for k, v in part.items()},
                             maybe(ids, "id"), maybe(st.sampled_from(["package", "Package", "things", "box", 5]),
                                                     "name"))
coco_objects = st.fixed_dictionaries(
    {}, optional={"images": st.lists(image_records | json_values, max_size=4) | json_values,
                  "annotations": st.lists(annotation_records | json_values, max_size=5) | json_values,
                  "categories": st.lists(category_records | json_values, max_size=3) | json_values})
coco_documents = coco_objects | json_values
detections = st.lists(st.builds(lambda *parts: {k: v for part in parts for k, v in part.items()},
                                maybe(ids, "image_id"), maybe(ids, "category_id"), maybe(bboxes, "bbox"),
                                maybe(numbers, "score")) | json_values, max_size=5) | json_values

tokens = st.sampled_from(["0", "1", "-1", "0.5", "0.25", "1.0", "2.5", "-0.2", "nan", "inf", "1e400", "x", "0x1",
                          "٣", "0.5\t0.5"])
label_lines = st.lists(tokens, max_size=7).map(" ".join) | st.text(max_size=12)
label_files = st.lists(label_lines, max_size=4).map("\n".join)
yaml_names = st.sampled_from([["package"], ["Package"], ["package", "package"], {0: "package"},
                              {0: "package", "a": "box"}, {1: "package"}, "package", None, [], [3], ["box"]])
yaml_documents = st.fixed_dictionaries({"names": yaml_names}, optional={"nc": st.integers(0, 2) | st.just("1")})

xml_texts = st.sampled_from(["", "1", "0", "-3", "12.5", "40", "nan", "inf", "1e400", "big", " 7 "])
xml_objects = st.builds(
    lambda name, corners: (f"<object>{name}<bndbox>"
                           + "".join(f"<{k}>{v}</{k}>" for k, v in corners if v is not None) + "</bndbox></object>"),
    st.sampled_from(["<name>package</name>", "<name>Package</name>", "<name></name>", "", "<name>box</name>"]),
    st.lists(st.tuples(st.sampled_from(["xmin", "ymin", "xmax", "ymax"]), xml_texts | st.none()), max_size=5))
xml_documents = st.builds(
    lambda file_name, size, objects, tail: (f"<annotation>{file_name}{size}{''.join(objects)}</annotation>{tail}"),
    st.sampled_from(["<filename>x.jpg</filename>", "<filename>nope.jpg</filename>", "", "<filename/>"]),
    st.builds(lambda w, h: f"<size><width>{w}</width><height>{h}</height></size>", xml_texts, xml_texts)
    | st.just(""),
    st.lists(xml_objects, max_size=3),
    st.sampled_from(["", "<", "&bogus;", "<extra/>"])) | st.text(max_size=30)


# --- helpers ---------------------------------------------------------------------------------------------

def documented(action: Callable[[], Any], names: tuple[str, ...] = ()) -> None:
    """Run ``action``; a ``ScaleDetError`` is a documented outcome if its message names one of ``names`` (the
    file or folder at fault: an error must say where), any other exception fails the test."""
    try:
        action()
    except ScaleDetError as error:
        assert not names or any(name in str(error) for name in names), f"the error names none of {names}: {error}"


def image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (90, 120, 30)).save(path)


def good_coco_split(folder: Path) -> None:
    image(folder / "x.jpg")
    (folder / "_annotations.coco.json").write_text(json.dumps({
        "images": [{"id": 0, "file_name": "x.jpg", "width": 40, "height": 30}],
        "annotations": [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 0, "name": "things"}, {"id": 1, "name": "package"}]}))


# --- importers and load_coco -------------------------------------------------------------------------------

def _import_coco_train_split(tmp: Path, document) -> Path:
    """A Roboflow COCO export whose train json is ``document`` (valid/test good), imported: documented errors
    only. Returns the train json's path."""
    source = tmp / "src"
    for split in ("valid", "test"):
        good_coco_split(source / split)
    image(source / "train" / "x.jpg")
    image(source / "train" / "y.png")
    path = source / "train" / "_annotations.coco.json"
    path.write_text(json.dumps(document))
    documented(lambda: import_dataset(PACKAGES, source, "coco", root=tmp / "root"), (str(source),))
    return path


@FUZZ
@given(document=coco_documents)
def test_fuzz_coco_import_and_load_coco(document):
    with tempfile.TemporaryDirectory() as tmp:
        path = _import_coco_train_split(Path(tmp), document)

        def load_and_read() -> None:
            dataset = load_coco(path)
            for index in range(len(dataset)):
                DetectionDataset([dataset], [dict.fromkeys(dataset.category_ids, 0)], None)[index]
        documented(load_and_read, (str(path),))


@FUZZ
@given(names=yaml_documents, labels=label_files, raw_yaml=st.booleans(), text=st.text(max_size=20))
def test_fuzz_yolo_import(names, labels, raw_yaml, text):
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        (source / "data.yaml").write_text(text if raw_yaml else yaml.safe_dump(names))
        for split in ("train", "valid", "test"):
            image(source / split / "images" / "a.jpg")
            (source / split / "labels").mkdir()
            (source / split / "labels" / "a.txt").write_text(labels if split == "train" else "0 0.5 0.5 0.2 0.2\n")
        documented(lambda: import_dataset(PACKAGES, source, "yolo", root=Path(tmp) / "root"), (str(source),))


@FUZZ
@given(document=xml_documents)
def test_fuzz_voc_import(document):
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        for split in ("train", "valid", "test"):
            image(source / split / "x.jpg")
            (source / split / "x.xml").write_text(
                document if split == "train" else
                "<annotation><filename>x.jpg</filename><object><name>package</name><bndbox><xmin>1</xmin>"
                "<ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>")
        documented(lambda: import_dataset(PACKAGES, source, "voc", root=Path(tmp) / "root"), (str(source),))


FIELDS = [("images", 0), ("images", 0, "id"), ("images", 0, "file_name"), ("images", 0, "width"),
          ("images", 0, "height"), ("annotations", 0), ("annotations", 0, "bbox"), ("annotations", 0, "bbox", 2),
          ("annotations", 0, "bbox", 0), ("annotations", 0, "image_id"), ("annotations", 0, "category_id"),
          ("annotations", 0, "iscrowd"), ("annotations", 0, "area"), ("categories", 0), ("categories", 0, "id"),
          ("categories", 1, "id"), ("categories", 1, "name")]


@FUZZ
@given(field=st.sampled_from(FIELDS), value=json_values | numbers | ids)
def test_fuzz_one_field_of_a_valid_coco_file(field, value):
    document = {"images": [{"id": 0, "file_name": "x.jpg", "width": 40, "height": 30},
                           {"id": 1, "file_name": "y.png", "width": 40, "height": 30}],
                "annotations": [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25,
                                 "iscrowd": 0},
                                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [30, 20, 20, 20]}],
                "categories": [{"id": 0, "name": "things"}, {"id": 1, "name": "package"}]}
    *parents, last = field
    node: Any = document
    for key in parents:
        node = node[key]
    node[last] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = _import_coco_train_split(Path(tmp), document)

        def load_read_evaluate() -> None:
            dataset = load_coco(path)
            for index in range(len(dataset)):
                DetectionDataset([dataset], [dict.fromkeys(dataset.category_ids, 0)], None)[index]
            coco_eval(dataset.source, [{"image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9}])
        documented(load_read_evaluate)


# --- coco_eval -------------------------------------------------------------------------------------------

@FUZZ
@given(gt=coco_documents, results=detections)
def test_fuzz_coco_eval(gt, results):
    documented(lambda: coco_eval(gt, results))


GOOD_GT = {"images": [{"id": 1, "file_name": "x.jpg"}, {"id": 2, "file_name": "y.jpg"}],
           "categories": [{"id": 1, "name": "package"}, {"id": 2, "name": "box"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]},
                           {"id": 2, "image_id": 2, "category_id": 2, "bbox": [5, 5, 20, 10]}]}


@FUZZ
@given(results=detections)
def test_fuzz_coco_eval_detections_on_valid_ground_truth(results):
    def evaluate() -> None:
        metrics = coco_eval(GOOD_GT, results)
        assert all(-1 <= metrics[k] <= 1 for k in ("AP", "AP50", "AP75", "APs", "APm", "APl"))
    documented(evaluate)


# --- valid inputs must be accepted, with the right counts ------------------------------------------------------

# a box strictly inside a 40 x 30 image, at least 1 px wide and high (nothing for the importer to fix or drop)
valid_boxes = st.tuples(st.integers(0, 38), st.integers(0, 28)).flatmap(
    lambda xy: st.tuples(st.just(xy[0]), st.just(xy[1]), st.integers(1, 40 - xy[0]), st.integers(1, 30 - xy[1])))
valid_images = st.lists(st.lists(valid_boxes, max_size=4), min_size=1, max_size=4)  # per image, its boxes


def _valid_coco(boxes_per_image: list[list[tuple[int, int, int, int]]], first_id: int) -> dict:
    images, annotations = [], []
    for i, boxes in enumerate(boxes_per_image):
        image_id = first_id + 7 * i  # sparse ids, as exports have them
        images.append({"id": image_id, "file_name": f"im{i}.jpg", "width": 40, "height": 30})
        annotations += [{"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "bbox": list(box),
                         "area": box[2] * box[3], "iscrowd": 0} for box in boxes]
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 0, "name": "things"}, {"id": 1, "name": "package"}]}


@FUZZ
@given(boxes_per_image=valid_images, first_id=st.integers(0, 1000))
def test_fuzz_valid_coco_exports_are_imported_whole(boxes_per_image, first_id):
    """Any valid COCO export (sparse ids, any boxes inside the image) imports without a loss and with no fix but the
    documented root category: every image and box of the train split arrives, and ``load_coco`` reads them back."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        for split in ("valid", "test"):
            good_coco_split(source / split)
        for i in range(len(boxes_per_image)):
            image(source / "train" / f"im{i}.jpg")
        (source / "train" / "_annotations.coco.json").write_text(json.dumps(_valid_coco(boxes_per_image, first_id)))
        summary = import_dataset(PACKAGES, source, "coco", root=Path(tmp) / "root")
        train = summary.splits["train"]
        n_boxes = sum(len(boxes) for boxes in boxes_per_image)
        # the one fix: Roboflow's empty id-0 root category ("things") dropped, in each of the 3 splits
        assert (train.images, train.boxes, summary.fixes) == (len(boxes_per_image), n_boxes, {"root_category": 3})
        dataset = load_coco(PACKAGES.annotation_path("train", Path(tmp) / "root"))
        assert len(dataset) == len(boxes_per_image) and list(dataset.category_names) == ["package"]
        loaded = sorted(tuple(a["bbox"]) for image_id in dataset.annotations for a in dataset.annotations[image_id])
        assert loaded == sorted(tuple(float(v) for v in box) for boxes in boxes_per_image for box in boxes)


@FUZZ
@given(boxes_per_image=valid_images)
def test_fuzz_valid_yolo_exports_are_imported_whole(boxes_per_image):
    """Any valid YOLO export (normalised centre boxes inside the image) imports every image and box."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        (source / "data.yaml").write_text(yaml.safe_dump({"names": ["package"], "nc": 1}))
        for split in ("train", "valid", "test"):
            (source / split / "labels").mkdir(parents=True)
            for i, boxes in enumerate(boxes_per_image if split == "train" else [[(1, 1, 5, 5)]]):
                image(source / split / "images" / f"im{i}.jpg")
                lines = [f"0 {(x + w / 2) / 40} {(y + h / 2) / 30} {w / 40} {h / 30}" for x, y, w, h in boxes]
                (source / split / "labels" / f"im{i}.txt").write_text("\n".join(lines))
        summary = import_dataset(PACKAGES, source, "yolo", root=Path(tmp) / "root")
        train = summary.splits["train"]
        assert (train.images, train.boxes) == (len(boxes_per_image), sum(len(b) for b in boxes_per_image))
        dataset = load_coco(PACKAGES.annotation_path("train", Path(tmp) / "root"))
        assert len(dataset) == len(boxes_per_image)


@FUZZ
@given(boxes=st.lists(valid_boxes, min_size=1, max_size=4), score=st.floats(0.01, 1.0))
def test_fuzz_detections_equal_to_the_ground_truth_score_ap_1(boxes, score):
    """``coco_eval`` accepts any valid ground truth and detections; detections equal to the ground truth score
    AP 1 whatever their score (at least 2 px boxes: COCO's IoU of identical 1 px boxes is still 1)."""
    gt = _valid_coco([boxes], 1)
    detections = [{"image_id": 1, "category_id": 1, "bbox": list(box), "score": score} for box in boxes]
    metrics = coco_eval(gt, detections)
    assert metrics["AP"] == 1.0 and metrics["AP50"] == 1.0 and metrics["per_class"]["package"] == 1.0
    assert coco_eval(gt, [])["AP"] == 0.0
