"""`harness download --source glip` against a local mirror serving zips built from the real Mushrooms data.

The server (tests/download_fixtures.py) runs on 127.0.0.1 on a free port, supports Range/If-Range, can
cut a response mid-body, records every request and stops itself after two minutes at most.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from download_fixtures import (
    MUSHROOMS,
    MUSHROOMS_ZIP_PATH,
    LocalServer,
    Reply,
    glip_tree,
    zip_entries,
    zip_folder,
)

from harness.acquire.download import GlipMirror, download, select
from harness.acquire.lock import DownloadLock, lock_path
from harness.catalog.datasets import DATASETS, load_split
from harness.cli import main
from scaledet.errors import DataError

pytestmark = pytest.mark.network

NAME = MUSHROOMS
SPEC = DATASETS[NAME]
ZIP_PATH = MUSHROOMS_ZIP_PATH



def _download(server: LocalServer, root: Path, attempts: int = 3):
    return download(select("odinw13", [NAME]), GlipMirror(f"{server.url}/odinw_35"), root, attempts=attempts,
                    timeout=10)


def _leftovers(root: Path) -> list[str]:
    odinw = root / "odinw"
    return sorted(p.name for p in odinw.rglob("*") if p.parent.name in (".downloads", ".staging")) if \
        odinw.is_dir() else []


def test_complete_download_is_verified_and_recorded(server, mushrooms_zip, tmp_path):
    server.files[ZIP_PATH] = mushrooms_zip
    [result] = _download(server, tmp_path)
    assert result.status == "downloaded"
    assert result.folder == SPEC.folder(tmp_path)
    assert result.images == {"train": 41, "valid": 5, "test": 5} == dict(SPEC.images)
    assert result.boxes == {"train": 67, "valid": 14, "test": 9} == dict(SPEC.boxes)
    for split in SPEC.splits:  # the registry's reader accepts it: categories, images on disk
        data = load_split(SPEC, split, tmp_path)
        assert all((data.image_root / img["file_name"]).is_file() for img in data.images)
    assert not (tmp_path / "odinw" / NAME / "other-variant").exists()  # only the registry's variant is kept
    sha = hashlib.sha256(mushrooms_zip).hexdigest()
    lock = json.loads(lock_path(tmp_path).read_text())
    entry = lock["datasets"][NAME]
    assert entry["complete"] and entry["source"] == "glip" and entry["variant"] == SPEC.variant
    assert entry["archives"]["glip"]["sha256"] == sha == result.sha256
    assert entry["archives"]["glip"]["bytes"] == len(mushrooms_zip)
    assert entry["archives"]["glip"]["url"] == f"{server.url}{ZIP_PATH}"
    assert _leftovers(tmp_path) == [] and not (tmp_path / "odinw" / ".downloads").exists()


def test_rerun_of_a_complete_dataset_does_nothing(server, mushrooms_zip, tmp_path, caplog):
    server.files[ZIP_PATH] = mushrooms_zip
    _download(server, tmp_path)
    lock_before = lock_path(tmp_path).read_text()
    requests_before = len(server.requests)
    with caplog.at_level(logging.INFO, logger="harness.acquire.download"):
        [again] = _download(server, tmp_path)
    assert again.status == "up to date"
    assert again.sha256 == hashlib.sha256(mushrooms_zip).hexdigest()
    assert len(server.requests) == requests_before  # not even a HEAD request
    assert lock_path(tmp_path).read_text() == lock_before
    assert "already downloaded and verified" in caplog.text and "nothing to do" in caplog.text


def test_interrupted_transfer_resumes_within_the_run(server, mushrooms_zip, tmp_path, monkeypatch):
    monkeypatch.setattr("harness.acquire.fetch.RETRY_PAUSE", 0.0)
    server.files[ZIP_PATH] = mushrooms_zip
    server.cuts[ZIP_PATH] = 700_000  # the first response closes the connection mid-body
    [result] = _download(server, tmp_path)
    first, second = server.requests
    assert "Range" not in first.headers
    assert second.headers["Range"].startswith("bytes=") and second.headers["Range"] != "bytes=0-"
    assert second.headers["If-Range"]  # the mirror's ETag: a changed file would restart from zero
    assert result.sha256 == hashlib.sha256(mushrooms_zip).hexdigest()
    assert DownloadLock(tmp_path).is_complete(NAME)


def test_interrupted_transfer_resumes_in_the_next_run(server, mushrooms_zip, tmp_path):
    server.files[ZIP_PATH] = mushrooms_zip
    server.cuts[ZIP_PATH] = 900_000
    with pytest.raises(DataError, match=r"failed after 1 try \(last: connection broken after \d+ bytes.*run the "
                                        r"command again to resume"):
        _download(server, tmp_path, attempts=1)
    part = tmp_path / "odinw" / ".downloads" / f"{NAME}.glip.zip.part"
    kept = part.stat().st_size
    assert 0 < kept < len(mushrooms_zip) and not DownloadLock(tmp_path).is_complete(NAME)
    assert part.read_bytes() == mushrooms_zip[:kept]
    [result] = _download(server, tmp_path, attempts=1)
    assert server.requests[-1].headers["Range"] == f"bytes={kept}-"
    assert result.resumed_from == kept
    assert result.sha256 == hashlib.sha256(mushrooms_zip).hexdigest() and result.status == "downloaded"
    assert not part.exists()


def test_checksum_mismatch_with_the_lock_file_fails_and_marks_nothing_complete(server, mushrooms_zip, tmp_path):
    server.files[ZIP_PATH] = mushrooms_zip
    _download(server, tmp_path)
    expected = hashlib.sha256(mushrooms_zip).hexdigest()
    for path in sorted(SPEC.folder(tmp_path).rglob("*"), reverse=True):  # the copy is lost; download again
        path.rmdir() if path.is_dir() else path.unlink()
    corrupt = bytearray(mushrooms_zip)
    corrupt[len(corrupt) // 2: len(corrupt) // 2 + 16] = b"\x00" * 16  # same size, damaged image bytes
    server.files[ZIP_PATH] = bytes(corrupt)
    with pytest.raises(DataError) as caught:
        _download(server, tmp_path)
    message = str(caught.value)
    actual = hashlib.sha256(corrupt).hexdigest()
    assert NAME in message and f"expects sha256 {expected}" in message and f"has sha256 {actual}" in message
    assert str(lock_path(tmp_path)) in message
    lock = DownloadLock(tmp_path)
    assert not lock.is_complete(NAME) and lock.archive_sha(NAME, "glip") == expected  # reference kept
    assert not SPEC.is_present(tmp_path) and _leftovers(tmp_path) == []


def test_corrupt_entry_on_first_download_names_the_entry(server, mushrooms_zip, tmp_path):
    corrupt = bytearray(mushrooms_zip)
    corrupt[len(corrupt) // 2: len(corrupt) // 2 + 16] = b"\x00" * 16
    server.files[ZIP_PATH] = bytes(corrupt)
    with pytest.raises(DataError, match=r"zip entry '.*\.jpg' is corrupt"):
        _download(server, tmp_path)
    assert not DownloadLock(tmp_path).is_complete(NAME) and DownloadLock(tmp_path).archive_sha(NAME, "glip") is None
    assert not SPEC.folder(tmp_path).exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize(("entry", "symlink", "reason"), [
    (f"{NAME}/{SPEC.variant}/../../../escaped.txt", False, "'..' component"),
    ("/tmp/scaledet-absolute-escape.txt", False, "absolute path"),
    (f"{NAME}/{SPEC.variant}/train/link.jpg", True, "symbolic link"),
])
def test_entries_escaping_the_target_are_refused(server, tmp_path, entry, symlink, reason):
    files = {f"{NAME}/{SPEC.variant}/train/annotations_without_background.json": b"{}"}
    links = {entry: "/etc/passwd"} if symlink else {}
    if not symlink:
        files[entry] = b"escaped"
    server.files[ZIP_PATH] = zip_entries(tmp_path / "evil.zip", files, links)
    root = tmp_path / "root"
    with pytest.raises(DataError) as caught:
        _download(server, root)
    assert f"zip entry {entry!r}" in str(caught.value) and reason in str(caught.value)
    assert not list(tmp_path.rglob("escaped.txt")) and not Path("/tmp/scaledet-absolute-escape.txt").exists()
    assert not list(root.rglob("link.jpg")) and not DownloadLock(root).is_complete(NAME)
    assert _leftovers(root) == []


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_an_html_page_instead_of_a_zip_is_a_clear_error(server, tmp_path, content_type):
    page = b"<!DOCTYPE html><html><body>Repository not found</body></html>"
    server.pages[ZIP_PATH] = Reply(200, page, content_type)
    with pytest.raises(DataError, match=r"instead of a zip archive|answered a web page") as caught:
        _download(server, tmp_path)
    assert f"{server.url}{ZIP_PATH}" in str(caught.value)
    assert not DownloadLock(tmp_path).is_complete(NAME) and _leftovers(tmp_path) == []


def test_http_error_names_the_url_and_status(server, tmp_path):
    with pytest.raises(DataError, match=r"answered HTTP 404"):
        _download(server, tmp_path)


def test_counts_that_differ_from_the_registry_fail(server, tmp_path):
    tree = glip_tree(tmp_path / "tree", NAME)
    train_json = tree / SPEC.variant / SPEC.split_files["train"]
    data = json.loads(train_json.read_text())
    dropped = data["images"].pop()
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != dropped["id"]]
    train_json.write_text(json.dumps(data))
    server.files[ZIP_PATH] = zip_folder(tree, tmp_path / "short.zip", arc_root=NAME)
    with pytest.raises(DataError, match=r"split train: 40 images, the registry expects 41"):
        _download(server, tmp_path / "root")
    assert not SPEC.folder(tmp_path / "root").exists() and not DownloadLock(tmp_path / "root").is_complete(NAME)


def test_a_copy_not_downloaded_here_is_left_alone(server, mushrooms_zip, tmp_path):
    server.files[ZIP_PATH] = mushrooms_zip
    _download(server, tmp_path)
    lock_path(tmp_path).unlink()  # e.g. a GLIP folder copied in by hand
    [result] = _download(server, tmp_path)
    assert result.status == "present, not downloaded here" and len(server.requests) == 1


def test_cli_downloads_then_says_up_to_date(server, mushrooms_zip, tmp_path, capsys):
    server.files[ZIP_PATH] = mushrooms_zip
    argv = ["download", "--only", NAME, "--root", str(tmp_path), "--glip-url", f"{server.url}/odinw_35"]
    assert main(argv) == 0
    assert "downloaded" in capsys.readouterr().out
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "up to date" in out and str(lock_path(tmp_path)) in out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["download", "--only", "Mushrooms", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean 'NorthAmericaMushrooms'" in err
    assert main(["download", "--roboflow", f"{NAME}=a/b/1", "--root", str(tmp_path)]) == 1
    assert "apply to --source roboflow" in capsys.readouterr().err


def test_an_unreachable_mirror_fails_clearly_and_leaves_nothing(tmp_path):
    with LocalServer(stop_after=10) as gone:
        url = f"{gone.url}/odinw_35"  # a port that is closed once the server stopped
    with pytest.raises(DataError, match=r"failed after 1 try \(last: cannot connect to .*; nothing was kept"):
        download(select("odinw13", [NAME]), GlipMirror(url), tmp_path, attempts=1, timeout=5)
    assert not (tmp_path / "odinw" / ".downloads").exists()
