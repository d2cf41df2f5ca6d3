"""Offline parts of `harness download`: safe zip extraction rules and the lock file (no server needed)."""

from __future__ import annotations

import zipfile

import pytest
from download_fixtures import zip_entries

from harness.acquire.archives import extract, unsafe_reason
from harness.acquire.lock import DownloadLock, lock_path
from scaledet.errors import DataError


@pytest.mark.parametrize(("name", "reason"), [
    ("../evil.txt", "'..'"),
    ("a/b/../../../evil.txt", "'..'"),
    ("a\\..\\..\\evil.txt", "'..'"),
    ("/etc/evil.txt", "absolute"),
    ("C:\\Windows\\evil.txt", "absolute"),
    ("c:/evil.txt", "absolute"),
])
def test_unsafe_names(name, reason):
    assert reason in unsafe_reason(zipfile.ZipInfo(name))


@pytest.mark.parametrize("name", ["a/b/c.jpg", "a/..b/c.jpg", "a/b../c", "a/", "a/b/"])
def test_safe_names(name):
    assert unsafe_reason(zipfile.ZipInfo(name)) is None


def test_extract_keeps_only_the_prefix_and_refuses_before_writing(tmp_path):
    zip_entries(tmp_path / "good.zip", {"D/v/train/a.json": b"{}", "D/v/train/x.jpg": b"x",
                                                "D/other/y.jpg": b"y", "D/v2/z.jpg": b"z"})
    assert extract(tmp_path / "good.zip", tmp_path / "out", prefix="D/v", label="D.zip") == 2
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")) == [
        "train/a.json", "train/x.jpg"]
    zip_entries(tmp_path / "bad.zip", {"D/v/train/a.json": b"{}", "D/v/../../../../evil.txt": b"!"})
    with pytest.raises(DataError, match=r"D\.zip: refused: zip entry 'D/v/\.\./\.\./\.\./\.\./evil\.txt' has a '\.\.'"):
        extract(tmp_path / "bad.zip", tmp_path / "out2", prefix="D/v", label="D.zip")
    assert not (tmp_path / "out2" / "train").exists() and not list(tmp_path.rglob("evil.txt"))
    with pytest.raises(DataError, match=r"no entries under 'E/v'; its top folders are \['D/other', 'D/v', 'D/v2'\]"):
        extract(tmp_path / "good.zip", tmp_path / "out3", prefix="E/v", label="E.zip")


def test_lock_file_records_once_and_rejects_a_foreign_file(tmp_path):
    lock = DownloadLock(tmp_path)
    assert lock.entry("Packages") == {} and not lock.is_complete("Packages")
    lock.mark_complete("Packages", source_key="glip", archive={"sha256": "a" * 64, "bytes": 3}, variant="Raw",
                       images={"train": 1}, boxes={"train": 2})
    lock.mark_incomplete("Packages")
    lock.mark_complete("Packages", source_key="glip", archive={"sha256": "b" * 64, "bytes": 3}, variant="Raw",
                       images={"train": 1}, boxes={"train": 2})
    assert lock.is_complete("Packages") and lock.archive_sha("Packages", "glip") == "a" * 64  # first one kept
    assert [p.name for p in lock_path(tmp_path).parent.iterdir()] == ["odinw.lock.json"]  # no temp files left
    lock_path(tmp_path).write_text('{"datasets": {}}')
    with pytest.raises(DataError, match=r"odinw.lock.json: field 'format' must be 'scaledet-odinw-lock/1'"):
        lock.read()
    lock_path(tmp_path).write_text("{not json")
    with pytest.raises(DataError, match=r"odinw.lock.json: cannot read the download lock file"):
        lock.read()
