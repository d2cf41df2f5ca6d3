"""Rehearsal stand-ins: written in each dataset's standard layout and read back by the real readers."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest

from harness.acquire.images import check_dataset_images
from harness.acquire.standins import (
    MARKER,
    sample_records,
    standin_data,
    write_odinw_standin,
    write_upstream_standin,
)
from harness.catalog import datasets as registry
from harness.catalog.upstream import SPECS, load_upstream
from harness.catalog.upstream_labels import UPSTREAM_ORDER, unified_indices, upstream_classes
from harness.commands import doctor, ls
from scaledet.data import check_image_files
from scaledet.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def _files(root: Path) -> dict[Path, int]:
    """Every file under ``root`` (links followed) -> its mtime in ns."""
    return {p: p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def _apply(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_odinw_standins_load_through_the_registry_and_pass_the_image_checks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = time.perf_counter()
    for spec in registry.ODINW13:
        assert write_odinw_standin(spec, tmp_path) == spec.folder(tmp_path)
    log.info("13 ODinW stand-ins written in %.2f s", time.perf_counter() - start)
    monkeypatch.setenv(registry.DATA_ENV, str(tmp_path))
    for spec in registry.ODINW13:
        assert ls.disk_state(spec, None) == "present"
        for split in spec.splits:
            dataset = registry.load_split(spec, split)  # root from $SCALEDET_DATA, categories checked
            assert len(dataset) == 4 and dataset.category_ids == spec.category_ids
            check_image_files(dataset)
            check_dataset_images(dataset)  # decodes every image
            boxed = {a["category_id"] for anns in dataset.annotations.values() for a in anns}
            assert boxed == set(spec.category_ids), (spec.name, split)
        check = doctor.verify_dataset(spec, None, {})
        assert check.status != doctor.FAIL, check  # counts differ from the paper's: a warning, not a failure


def test_upstream_standins_load_with_the_real_label_spaces(tmp_path: Path) -> None:
    roots = {name: tmp_path / name for name in UPSTREAM_ORDER}
    start = time.perf_counter()
    for name in ("coco", "lvis", "objects365", "openimages"):  # LVIS takes COCO's images
        write_upstream_standin(name, roots[name], coco_root=roots["coco"] if name == "lvis" else None)
    log.info("4 upstream stand-ins written in %.2f s", time.perf_counter() - start)
    labels = 0
    for name in UPSTREAM_ORDER:
        assert all(ls.upstream_state(name, split, tmp_path) == "present" for split in SPECS[name].splits)
        for split in SPECS[name].splits:
            records = load_upstream(name, split, roots, cache_dir=tmp_path / "cache")
            dataset = records.dataset
            assert len(dataset) == 4 and sum(len(a) for a in dataset.annotations.values()) == 12
            assert len(dataset.category_ids) == len(upstream_classes(name))
            assert set(records.unified) == set(dataset.category_ids) == set(unified_indices(name))
            check_dataset_images(dataset)
            if name == "objects365":  # train unpacked as patch0/..., val as the json names it
                prefixed = dataset.images[0]["file_name"].startswith("images/v1/")
                assert prefixed == (split == "val")
        labels += len(dataset.category_ids)
    assert labels == 2249
    lvis = load_upstream("lvis", "val", roots).dataset
    assert lvis.image_root == roots["coco"] and lvis.images[0]["file_name"].startswith("val2017/")
    assert {c["frequency"] for c in lvis.source["categories"]} == {"r", "c", "f"}
    oid = load_upstream("openimages", "val", roots, cache_dir=tmp_path / "cache").dataset
    assert all(img["pos_category_ids"] for img in oid.images) and any(img["neg_category_ids"] for img in oid.images)


def test_lvis_standin_writes_its_own_images_only_into_a_coco_root_without_annotations(tmp_path: Path) -> None:
    write_upstream_standin("lvis", tmp_path / "lvis")  # COCO root defaults to the sibling folder
    records = load_upstream("lvis", "train", {"lvis": tmp_path / "lvis", "coco": tmp_path / "coco"})
    check_dataset_images(records.dataset)
    real_coco = tmp_path / "real" / "coco"
    write_upstream_standin("coco", real_coco)
    for image in (real_coco / "val2017").iterdir():
        image.unlink()  # annotations without images: nothing may be written there
    with pytest.raises(DataError, match="has annotations but no images"):
        write_upstream_standin("lvis", tmp_path / "lvis2", coco_root=real_coco)


def test_sample_records_takes_k_seeded_images_with_their_annotations(tmp_path: Path) -> None:
    spec = registry.DATASETS["Aquarium"]
    write_odinw_standin(spec, tmp_path, images_per_split=8)
    dataset = registry.load_split(spec, "train", tmp_path)
    sample = sample_records(dataset, 3, seed=0)
    ids = {img["id"] for img in sample.images}
    assert len(ids) == 3 and set(sample.annotations) == ids
    assert {a["image_id"] for a in sample.source["annotations"]} == ids
    assert [img["id"] for img in sample.source["images"]] == [img["id"] for img in sample.images]
    assert all(sample.annotations[i] == dataset.annotations[i] for i in ids)
    check_dataset_images(sample)
    assert sample_records(dataset, 3, seed=0).images == sample.images  # deterministic
    assert len({tuple(img["id"] for img in sample_records(dataset, 3, seed=s).images) for s in range(6)}) > 1
    assert sample_records(dataset, 50) is dataset
    with pytest.raises(ConfigError, match="k >= 1"):
        sample_records(dataset, 0)


def test_standin_data_writes_only_absent_odinw_datasets_and_links_present_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, rehearsal = tmp_path / "real", tmp_path / "rehearsal"
    shutil.copytree(registry.DEMO_ROOT / "odinw" / "Packages", real / "odinw" / "Packages")  # real files
    monkeypatch.setenv(registry.DATA_ENV, str(real))
    env = standin_data(rehearsal, "odinw13", ["Packages", "Raccoon"])
    assert env == {registry.DATA_ENV: str(rehearsal.absolute())}
    # links per variant folder (two variants of one dataset may be one present, one a stand-in)
    assert registry.DATASETS["Packages"].folder(rehearsal).is_symlink() and not (real / "odinw" / "Raccoon").exists()
    assert (registry.DATASETS["Raccoon"].folder(rehearsal) / MARKER).is_file()
    before = _files(rehearsal)
    assert standin_data(rehearsal, "odinw13", ["Packages", "Raccoon"]) == env  # idempotent: nothing rewritten
    assert _files(rehearsal) == before

    _apply(env, monkeypatch)  # what a rehearsal job sees: the real Packages, the stand-in Raccoon
    packages = registry.load_split(registry.DATASETS["Packages"], "train")
    assert len(packages) == 19 and not (packages.image_root / MARKER).exists()
    assert doctor.verify_dataset(registry.DATASETS["Raccoon"], None, {}).status != doctor.FAIL

    monkeypatch.setenv(registry.DATA_ENV, str(real))
    shutil.copytree(registry.DEMO_ROOT / "odinw" / "Raccoon", real / "odinw" / "Raccoon")  # Raccoon arrives
    assert standin_data(rehearsal, "odinw13", ["Packages", "Raccoon"]) == {}  # all present: env left alone
    env = standin_data(rehearsal, "odinw13", ["Raccoon", "pothole"])
    assert registry.DATASETS["Raccoon"].folder(rehearsal).is_symlink()  # the stand-in gave way to the real data
    assert (registry.DATASETS["pothole"].folder(rehearsal) / MARKER).is_file()
    assert standin_data(rehearsal, "demo") == {}  # embedded copies: nothing to do
    _apply(env, monkeypatch)  # a second suite prepared after the first's environment is applied
    assert standin_data(rehearsal, "odinw13", ["Raccoon", "pothole"]) == {}
    assert registry.DATASETS["Raccoon"].folder(rehearsal).is_symlink()


def test_standin_data_upstream_reuses_present_coco_for_lvis_and_counts_2249_labels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_coco, rehearsal = tmp_path / "cluster" / "coco", tmp_path / "rehearsal"
    write_upstream_standin("coco", real_coco)  # stands for a COCO already on the cluster's disk
    (real_coco / MARKER).unlink()
    coco_files = _files(real_coco)
    monkeypatch.setenv(registry.DATA_ENV, str(tmp_path / "empty"))
    monkeypatch.setenv(SPECS["coco"].env_var, str(real_coco))
    env = standin_data(rehearsal, "upstream")
    assert env == {SPECS[n].env_var: str(rehearsal.absolute() / n) for n in ("lvis", "objects365", "openimages")}
    assert _files(real_coco) == coco_files  # present data is not written to
    before = _files(rehearsal)
    assert standin_data(rehearsal, "upstream") == env and _files(rehearsal) == before

    _apply(env, monkeypatch)
    lvis = load_upstream("lvis", "train").dataset  # roots from the environment, as a job finds them
    assert lvis.image_root == real_coco
    check_dataset_images(lvis)
    assert sum(len(load_upstream(n, "val").dataset.category_ids) for n in UPSTREAM_ORDER) == 2249


def test_standin_data_refuses_the_real_data_root_and_foreign_folders(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.DATA_ENV, str(tmp_path / "real"))
    with pytest.raises(ConfigError, match="is the real data root"):
        standin_data(tmp_path / "real", "odinw13", ["Raccoon"])
    (tmp_path / "rehearsal" / "objects365").mkdir(parents=True)
    (tmp_path / "rehearsal" / "objects365" / "mine.txt").write_text("not a stand-in")
    with pytest.raises(DataError, match="not a stand-in written by harness"):
        standin_data(tmp_path / "rehearsal", "upstream", ["objects365"])
    assert (tmp_path / "rehearsal" / "objects365" / "mine.txt").is_file()
