"""Upstream records: standard layouts load, classes agree with the lists, the unified 2,249-label space."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest
from coco_fixtures import SHARED_DATA
from upstream_fixtures import make_coco, make_lvis, make_objects365, make_openimages

from harness.catalog.upstream import annotation_file, data_root, load_upstream
from harness.catalog.upstream_labels import LABEL_FILES, UPSTREAM_ORDER, unified_label_space, upstream_classes
from scaledet.errors import ConfigError, DataError

SHARED_LABELS = SHARED_DATA / "labels"


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    roots = {name: tmp_path / name for name in UPSTREAM_ORDER}
    make_coco(roots["coco"])
    make_lvis(roots["lvis"], roots["coco"])
    make_objects365(roots["objects365"])
    make_openimages(roots["openimages"])
    return roots


def test_unified_label_space_in_the_papers_order() -> None:
    labels = unified_label_space()
    assert len(labels) == 2249 and [label.index for label in labels] == list(range(2249))
    counts = {name: sum(label.dataset == name for label in labels) for name in UPSTREAM_ORDER}
    assert counts == {"lvis": 1203, "coco": 80, "objects365": 365, "openimages": 601}
    first = {(label.dataset, label.name, label.original_id) for label in labels
             if label.index in (0, 1203, 1283, 1648, 2248)}
    assert first == {("lvis", "aerosol_can", 1), ("coco", "person", 1), ("objects365", "Person", 1),
                     ("openimages", "Tortoise", 1), ("openimages", upstream_classes("openimages")[-1].name, 601)}
    assert labels[1203 + 79].original_id == 90  # COCO ids are the original sparse ones (toothbrush)
    two = unified_label_space(("coco", "lvis"))  # any subset keeps L before C
    assert len(two) == 1283 and two[0].dataset == "lvis" and two[1203].name == "person"
    with pytest.raises(ConfigError, match="did you mean 'lvis'"):
        unified_label_space(("lvsi",))


@pytest.mark.skipif(not SHARED_LABELS.is_dir(), reason=f"the shared label lists are not at {SHARED_LABELS}")
def test_package_lists_are_the_shared_lists() -> None:
    for name in [*LABEL_FILES.values(), "openimages_v6_hierarchy.json"]:
        packaged = Path(__file__).resolve().parents[1] / "harness" / "data" / "labels" / name
        assert filecmp.cmp(packaged, SHARED_LABELS / name, shallow=False), name


def test_every_upstream_dataset_loads_and_maps_onto_the_unified_space(roots: dict[str, Path], tmp_path: Path) -> None:
    expected_annotations = {  # dataset -> (category id of the annotations, unified index)
        "lvis": {(1, 0), (1203, 1202)},
        "coco": {(1, 1203), (90, 1282)},
        "objects365": {(365, 1283 + 364)},
        "openimages": {(1, 1648), (69, 1648 + 68)},  # Tortoise; Person is row 69 of the class list
    }
    for name in UPSTREAM_ORDER:
        records = load_upstream(name, "val", roots=roots, cache_dir=tmp_path / "cache")
        dataset = records.dataset
        assert len(dataset.category_ids) == len(upstream_classes(name))
        pairs = {(a["category_id"], records.unified[a["category_id"]]) for a in dataset.source["annotations"]}
        assert pairs == expected_annotations[name], name
        for image in dataset.images:  # every image resolves on disk
            assert (dataset.image_root / image["file_name"]).is_file(), (name, image)
        sliced = sorted(records.unified.values())
        assert sliced == list(range(sliced[0], sliced[0] + len(sliced)))


def test_lvis_images_come_from_coco_and_keep_federated_fields(roots: dict[str, Path]) -> None:
    dataset = load_upstream("lvis", "val", roots=roots).dataset
    assert dataset.image_root == roots["coco"]
    assert dataset.images[0]["file_name"] == "train2017/000000000009.jpg"
    assert dataset.source["images"][0]["neg_category_ids"] == [2]


def test_objects365_patch_folders_as_the_train_tars_unpack(tmp_path: Path) -> None:
    make_objects365(tmp_path / "o365", split="train", patch_dirs=True)
    dataset = load_upstream("objects365", "train", roots={"objects365": tmp_path / "o365"}).dataset
    assert dataset.images[0]["file_name"] == "patch16/objects365_v2_00908726.jpg"


def test_roots_from_environment_and_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_coco(tmp_path / "elsewhere")
    monkeypatch.setenv("SCALEDET_COCO_ROOT", str(tmp_path / "elsewhere"))
    assert annotation_file("coco", "val") == tmp_path / "elsewhere/annotations/instances_val2017.json"
    monkeypatch.delenv("SCALEDET_COCO_ROOT")
    monkeypatch.setenv("SCALEDET_DATA", str(tmp_path / "data"))
    assert data_root() == tmp_path / "data"
    make_coco(tmp_path / "data" / "coco")
    assert annotation_file("coco", "val") == tmp_path / "data/coco/annotations/instances_val2017.json"


def test_missing_dataset_says_where_it_looked_and_what_to_set(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SCALEDET_DATA", str(tmp_path / "empty"))
    monkeypatch.delenv("SCALEDET_OBJECTS365_ROOT", raising=False)
    with pytest.raises(DataError) as error:
        load_upstream("objects365", "train")
    message = str(error.value)
    assert str(tmp_path / "empty/objects365/train/zhiyuan_objv2_train.json") in message
    assert str(tmp_path / "empty/objects365/annotations/zhiyuan_objv2_train.json") in message
    assert "$SCALEDET_OBJECTS365_ROOT" in message and "no download" in message
    with pytest.raises(DataError, match="class-descriptions-boxable.csv"):
        root = tmp_path / "oi"
        make_openimages(root)
        (root / "class-descriptions-boxable.csv").unlink()
        load_upstream("openimages", "val", roots={"openimages": root})


def test_missing_images_and_wrong_classes_are_data_errors(roots: dict[str, Path]) -> None:
    (roots["coco"] / "val2017" / "000000000139.jpg").unlink()
    with pytest.raises(DataError, match="COCO 2017 images not found: looked for .*000000000139.jpg"):
        load_upstream("coco", "val", roots=roots)
    path = roots["objects365"] / "val" / "zhiyuan_objv2_val.json"
    data = json.loads(path.read_text())
    data["categories"][1]["name"] = "Sneaker"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"different names \(id, found, expected\) \[\(2, 'Sneaker', 'Sneakers'\)\]"):
        load_upstream("objects365", "val", roots=roots)
