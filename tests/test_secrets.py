"""Secrets: a Roboflow API key never reaches a file the harness writes, its output or its logs.

`harness download` runs through ``harness.cli.main`` three times with a sentinel key in ``ROBOFLOW_API_KEY``:
a Roboflow download that succeeds, one the server refuses (401, with the key echoed back in the body as
careless servers do), and a failing GLIP download. Every root the harness may write to (data root, cache,
home and config dirs, temp dir, current directory) points into ``tmp_path``; afterwards every file under it
(names and bytes) and everything printed or logged is scanned for the key: zero occurrences.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from download_fixtures import LocalServer, RoboflowServer, roboflow_export_tree, zip_folder

from harness.catalog.datasets import DATASETS
from harness.cli import main

pytestmark = pytest.mark.network

SENTINEL = "sntl-Key-4f9Qz7wX2p"  # lowercase letters: the client treats all-caps keys as placeholders


@pytest.fixture(scope="module")
def packages_export(tmp_path_factory) -> bytes:
    tmp = tmp_path_factory.mktemp("export")
    return zip_folder(roboflow_export_tree(tmp / "Packages", "Packages"), tmp / "Packages.zip")


def _forms(key: str) -> set[bytes]:
    return {form.encode() for form in (key, quote(key, safe=""), quote_plus(key))}


def test_the_api_key_is_nowhere_the_harness_writes_or_prints(packages_export, tmp_path, monkeypatch, caplog,
                                                              capsys):
    roots = {name: tmp_path / name for name in ("data", "cache", "home", "cwd", "tmp")}
    for path in roots.values():
        path.mkdir()
    monkeypatch.setenv("SCALEDET_DATA", str(roots["data"]))
    monkeypatch.setenv("SCALEDET_CACHE", str(roots["cache"]))
    monkeypatch.setenv("HOME", str(roots["home"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(roots["home"] / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(roots["home"] / ".config"))
    monkeypatch.setenv("ROBOFLOW_CONFIG_DIR", str(roots["home"] / ".config" / "roboflow" / "config.json"))
    monkeypatch.setenv("TMPDIR", str(roots["tmp"]))
    monkeypatch.setattr(tempfile, "tempdir", str(roots["tmp"]))
    monkeypatch.setenv("ROBOFLOW_API_KEY", SENTINEL)
    monkeypatch.chdir(roots["cwd"])
    exports = {("joseph-nelson", "packages-g0ton", 6): packages_export,
               ("mycology", "north-american-mushrooms", 1): packages_export}
    printed = []
    with RoboflowServer(stop_after=60, api_key=SENTINEL, exports=exports) as server, \
            caplog.at_level(logging.DEBUG):  # urllib3 logs request lines (with ?api_key=) at DEBUG
        monkeypatch.setenv("API_URL", server.url)
        assert main(["-v", "download", "--source", "roboflow", "--only", "Packages"]) == 0
        ok = capsys.readouterr()
        printed += [ok.out, ok.err]
        assert "downloaded" in ok.out and DATASETS["Packages"].is_present(roots["data"])

        server.api_key = "another-key-the-server-wants"  # the key is refused: 401, key echoed in the body
        argv = ["-v", "download", "--source", "roboflow", "--only", "NorthAmericaMushrooms",
                "--roboflow", "NorthAmericaMushrooms=mycology/north-american-mushrooms/1"]
        assert main(argv) == 1
        refused = capsys.readouterr()
        printed += [refused.out, refused.err]
        assert "harness download: error: " in refused.err and "ROBOFLOW_API_KEY" in refused.err

        with LocalServer(stop_after=30) as mirror:  # a GLIP mirror without the file: 404
            argv = ["-v", "download", "--source", "glip", "--only", "Aquarium", "--glip-url",
                    f"{mirror.url}/odinw_35", "--attempts", "1"]
            assert main(argv) == 1
        glip = capsys.readouterr()
        printed += [glip.out, glip.err]
        assert "answered HTTP 404" in glip.err
        seen_by_server = "\n".join(server.log_lines)
    assert SENTINEL in seen_by_server  # the key did travel to the server, so the scan below means something
    assert "api_key=***" in caplog.text  # the request lines were logged, scrubbed

    for text in [*printed, caplog.text, *(record.getMessage() for record in caplog.records)]:
        for form in _forms(SENTINEL):
            assert form.decode() not in text
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "download-lock.json" or "lock" in p.name for p in written)  # the harness wrote files
    assert any(p.is_relative_to(roots["data"]) for p in written)
    for path in tmp_path.rglob("*"):
        assert SENTINEL not in str(path)
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            for form in _forms(SENTINEL):
                assert form not in data, f"the API key is in {path}"


def test_scan_would_find_a_leak(tmp_path):
    """The scan itself: a file holding the key URL-encoded is caught."""
    (tmp_path / "leak.json").write_text(f'{{"url": "https://x/?api_key={quote(SENTINEL, safe="")}"}}')
    found = [p for p in tmp_path.rglob("*") if p.is_file() and any(f in p.read_bytes() for f in _forms(SENTINEL))]
    assert found == [Path(tmp_path / "leak.json")]
