"""Hardening, downloads: the cases tests/test_download_*.py do not cover yet.

Covered there (not repeated here): interrupted transfers resumed in the same run and the next
(test_download_glip.py::test_interrupted_transfer_resumes_*), a corrupted archive against the lock file
(::test_checksum_mismatch_with_the_lock_file_fails_and_marks_nothing_complete) and on a first download
(::test_corrupt_entry_on_first_download_names_the_entry), an HTML page served as the zip
(::test_an_html_page_instead_of_a_zip_is_a_clear_error), '..', absolute and symbolic-link entries
(::test_entries_escaping_the_target_are_refused, test_download_archives.py::test_unsafe_names).

Here: a zip cut short (the server's copy is truncated, so the transfer itself "completes"), the same through
the CLI, and an HTML page saved under the archive's name in ``.downloads`` (reused by a later run).
"""

from __future__ import annotations

import pytest
from download_fixtures import (
    MUSHROOMS,
    MUSHROOMS_ZIP_PATH,
    LocalServer,
)

from harness.acquire.download import GlipMirror, download, select
from harness.acquire.lock import DownloadLock, lock_path
from harness.catalog.datasets import DATASETS
from harness.cli import main
from scaledet.errors import DataError

pytestmark = pytest.mark.network

NAME = MUSHROOMS
SPEC = DATASETS[NAME]
ZIP_PATH = MUSHROOMS_ZIP_PATH



def _download(server: LocalServer, root):
    return download(select("odinw13", [NAME]), GlipMirror(f"{server.url}/odinw_35"), root, attempts=1, timeout=10)


def _nothing_installed(root) -> None:
    lock = DownloadLock(root)
    assert not lock.is_complete(NAME) and lock.archive_sha(NAME, "glip") is None  # no checksum recorded either
    assert not SPEC.folder(root).exists()
    odinw = root / "odinw"
    assert not (odinw / ".downloads").exists() and not (odinw / ".staging").exists()  # a bad zip is not kept


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_a_truncated_zip_is_a_clear_error_and_nothing_is_complete(server, mushrooms_zip, tmp_path, keep):
    """The mirror's file itself is cut short (its Content-Length matches): the zip's directory is gone."""
    server.files[ZIP_PATH] = mushrooms_zip[: int(len(mushrooms_zip) * keep)]
    with pytest.raises(DataError) as caught:
        _download(server, tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{NAME}.zip: ") and "is not a readable zip archive" in message
    assert f"{NAME}.glip.zip" in message  # the file it read
    assert len(message.splitlines()) == 1 and caught.value.__cause__ is None
    _nothing_installed(tmp_path)
    server.files[ZIP_PATH] = mushrooms_zip  # the mirror is fixed: the next run installs it
    [result] = _download(server, tmp_path)
    assert result.status == "downloaded" and DownloadLock(tmp_path).is_complete(NAME)


def test_cli_truncated_zip_is_one_line_exit_1(server, mushrooms_zip, tmp_path, capsys):
    server.files[ZIP_PATH] = mushrooms_zip[: len(mushrooms_zip) // 3]
    argv = ["download", "--only", NAME, "--root", str(tmp_path), "--glip-url", f"{server.url}/odinw_35",
            "--attempts", "1"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = [line.strip() for line in err.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line]  # the rest is the progress bar
    assert len(errors) == 1 and errors[0].startswith("harness download: error: ") and errors[0] == lines[-1]
    assert "not a readable zip archive" in errors[0] and "Traceback" not in err
    _nothing_installed(tmp_path)
    assert not lock_path(tmp_path).exists() or NAME not in lock_path(tmp_path).read_text()


def test_an_html_page_saved_as_the_zip_is_refused_and_removed(server, mushrooms_zip, tmp_path):
    """A complete archive in .downloads is reused by the next run; an HTML page saved there (a browser
    "Save as", a proxy's login page) is refused, deleted, and the run after that downloads the real zip."""
    downloads = tmp_path / "odinw" / ".downloads"
    downloads.mkdir(parents=True)
    saved = downloads / f"{NAME}.glip.zip"
    saved.write_bytes(b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>...</body></html>")
    server.files[ZIP_PATH] = mushrooms_zip
    with pytest.raises(DataError, match=rf"{NAME}\.zip: {saved} is not a readable zip archive"):
        _download(server, tmp_path)
    assert server.requests == []  # the saved file was used, not the network
    _nothing_installed(tmp_path)
    [result] = _download(server, tmp_path)
    assert result.status == "downloaded" and len(server.requests) == 1
