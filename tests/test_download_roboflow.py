"""`harness download --source roboflow`: the real ``roboflow`` client against a local emulation of its API.

The emulator (tests/download_fixtures.py ``RoboflowServer``) answers the calls the client makes for
``Roboflow(key).workspace(ws).project(p).version(v)`` and the version's COCO export, and serves a Roboflow
COCO export zip built from the real Packages / Mushrooms data. A wrong key is answered 401 with the key
echoed back in the body, so the tests prove the harness scrubs it from everything it reports or writes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from download_fixtures import RoboflowServer, roboflow_export_tree, zip_folder

from harness.acquire.download import download, select
from harness.acquire.lock import DownloadLock, lock_path
from harness.acquire.roboflow import (
    RoboflowCoordinates,
    RoboflowExport,
    load_config,
    resolve_coordinates,
    scrub,
)
from harness.catalog.datasets import DATASETS, load_split
from harness.cli import main
from scaledet.errors import ConfigError, DataError

pytestmark = pytest.mark.network

KEY = "sentinel-rf-key-7Hq2xZ"  # has lowercase letters: the client treats all-caps keys as placeholders
PACKAGES = DATASETS["Packages"]
MUSHROOMS = DATASETS["NorthAmericaMushrooms"]


@pytest.fixture(scope="module")
def export_zips(tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("roboflow")
    return {name: zip_folder(roboflow_export_tree(tmp / name, name), tmp / f"{name}.zip")
            for name in ("Packages", "NorthAmericaMushrooms")}


@pytest.fixture
def roboflow(export_zips, monkeypatch, tmp_path):
    exports = {("joseph-nelson", "packages-g0ton", 6): export_zips["Packages"],
               ("mycology", "north-american-mushrooms", 1): export_zips["NorthAmericaMushrooms"]}
    with RoboflowServer(stop_after=60, api_key=KEY, exports=exports) as server:
        monkeypatch.setenv("API_URL", server.url)  # read by the client (re-read by the harness on each use)
        monkeypatch.setenv("ROBOFLOW_API_KEY", KEY)
        monkeypatch.setenv("ROBOFLOW_CONFIG_DIR", str(tmp_path / "no-roboflow-config.json"))
        yield server


def _assert_key_nowhere(key: str, root: Path, *texts: str) -> None:
    for text in texts:
        assert key not in text
    for path in root.rglob("*"):
        assert key not in path.name
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def test_roboflow_export_is_downloaded_converted_and_verified(roboflow, tmp_path, caplog, capsys):
    specs = select("odinw13", ["Packages"])
    with caplog.at_level(logging.DEBUG):  # urllib3 logs every request line (with ?api_key=) at DEBUG
        [result] = download(specs, RoboflowExport.from_options(specs), tmp_path, timeout=10)
    assert result.status == "downloaded" and result.folder == PACKAGES.folder(tmp_path)
    assert result.images == dict(PACKAGES.images) and result.boxes == dict(PACKAGES.boxes)
    for split in PACKAGES.splits:
        data = load_split(PACKAGES, split, tmp_path)  # registry categories: the id-0 root category is gone
        assert data.category_ids == (1,) and data.category_names == ("package",)
    calls = [(seen.method, seen.path) for seen in roboflow.requests]
    assert calls[0] == ("POST", "/")
    for path in ("/joseph-nelson", "/joseph-nelson/packages-g0ton", "/joseph-nelson/packages-g0ton/6",
                 "/joseph-nelson/packages-g0ton/6/coco", "/ds/joseph-nelson-packages-g0ton-6.zip"):
        assert ("GET", path) in calls
    entry = json.loads(lock_path(tmp_path).read_text())["datasets"]["Packages"]
    key = "roboflow:joseph-nelson/packages-g0ton/6"
    assert entry["complete"] and entry["source"] == key
    assert entry["archives"][key]["roboflow"] == "joseph-nelson/packages-g0ton/6"
    assert "signed-download-token" not in lock_path(tmp_path).read_text()  # the signed link is not stored
    assert "api_key=***" in caplog.text  # the request lines were logged, scrubbed
    out = capsys.readouterr()
    _assert_key_nowhere(KEY, tmp_path, caplog.text, out.out, out.err, repr(RoboflowExport.from_options(specs)))


@pytest.mark.parametrize("refusal", ["wrong key (401 at authentication)", "403 at the workspace"])
def test_a_refused_key_is_a_clear_error_without_the_key(roboflow, tmp_path, caplog, capsys, monkeypatch, refusal):
    used = KEY
    if refusal.startswith("wrong"):
        used = "wrong-sentinel-key-Zr81pq"
        monkeypatch.setenv("ROBOFLOW_API_KEY", used)
    else:
        roboflow.deny["/joseph-nelson"] = 403
    specs = select("odinw13", ["Packages"])
    with caplog.at_level(logging.DEBUG), pytest.raises(DataError) as caught:
        download(specs, RoboflowExport.from_options(specs), tmp_path, timeout=10)
    message = str(caught.value)
    assert "Packages" in message and "joseph-nelson/packages-g0ton/6" in message and "ROBOFLOW_API_KEY" in message
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert any(used in body for body in roboflow.log_lines)  # the key did travel (the server saw it) ...
    out = capsys.readouterr()
    _assert_key_nowhere(used, tmp_path, message, repr(caught.value), caplog.text, out.out, out.err)
    assert not DownloadLock(tmp_path).is_complete("Packages") and not PACKAGES.folder(tmp_path).exists()


def test_a_dataset_without_coordinates_says_what_to_pass(roboflow, tmp_path):
    specs = select("odinw13", ["NorthAmericaMushrooms", "Packages"])
    with pytest.raises(ConfigError) as caught:
        RoboflowExport.from_options(specs)
    message = str(caught.value)
    assert "no Roboflow coordinates for NorthAmericaMushrooms" in message and "Packages" not in message
    assert "--roboflow NorthAmericaMushrooms=WORKSPACE/PROJECT/VERSION" in message
    assert "--roboflow-config" in message
    assert roboflow.requests == []  # decided before any network call


def test_cli_coordinates_from_a_config_file_and_overrides(roboflow, tmp_path, capsys):
    config = tmp_path / "roboflow.yaml"
    config.write_text("roboflow:\n  NorthAmericaMushrooms: mycology/north-american-mushrooms/1\n"
                      "  Packages: someone/else/9\n")
    argv = ["download", "--source", "roboflow", "--root", str(tmp_path / "root"), "--roboflow-config", str(config),
            "--only", "NorthAmericaMushrooms", "Packages", "--roboflow", "Packages=joseph-nelson/packages-g0ton/6"]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert out.out.count("downloaded") == 2
    lock = DownloadLock(tmp_path / "root")
    assert lock.entry("NorthAmericaMushrooms")["source"] == "roboflow:mycology/north-american-mushrooms/1"
    assert lock.entry("Packages")["source"] == "roboflow:joseph-nelson/packages-g0ton/6"  # flag beats file
    assert MUSHROOMS.is_present(tmp_path / "root") and PACKAGES.is_present(tmp_path / "root")
    _assert_key_nowhere(KEY, tmp_path / "root", out.out, out.err)


def test_cli_without_coordinates_exits_1_with_one_line(roboflow, tmp_path, capsys):
    assert main(["download", "--source", "roboflow", "--only", "Aquarium", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--roboflow Aquarium=WORKSPACE/PROJECT/VERSION" in err


def test_missing_api_key_is_a_config_error(roboflow, monkeypatch):
    monkeypatch.delenv("ROBOFLOW_API_KEY")
    with pytest.raises(ConfigError, match="ROBOFLOW_API_KEY"):
        RoboflowExport.from_options(select("odinw13", ["Packages"]))


def test_config_file_is_strict(tmp_path):
    path = tmp_path / "rf.yaml"
    path.write_text("roboflw:\n  Packages: a/b/1\n")
    with pytest.raises(ConfigError, match=r"rf.yaml: unknown key 'roboflw' \(did you mean 'roboflow'\?\)"):
        load_config(path)
    path.write_text("roboflow:\n  Pakages: a/b/1\n")
    with pytest.raises(ConfigError, match=r"did you mean 'Packages'"):
        load_config(path)
    path.write_text("roboflow:\n  Packages: a/b\n")
    with pytest.raises(ConfigError, match=r"rf.yaml: field 'roboflow.Packages': expected WORKSPACE/PROJECT/VERSION"):
        load_config(path)
    path.write_text("roboflow:\n  Packages: a/b/3\n")
    assert load_config(path) == {"Packages": RoboflowCoordinates("a", "b", 3)}


def test_coordinates_precedence_flag_over_file_over_registry(tmp_path):
    path = tmp_path / "rf.yaml"
    path.write_text("roboflow:\n  Packages: from/file/2\n  Aquarium: from/file/3\n")
    specs = [PACKAGES, DATASETS["Aquarium"]]
    assert {k: str(v) for k, v in resolve_coordinates([PACKAGES]).items()} == {
        "Packages": "joseph-nelson/packages-g0ton/6"}
    assert {k: str(v) for k, v in resolve_coordinates(specs, ["Aquarium=from/flag/4"], path).items()} == {
        "Packages": "from/file/2", "Aquarium": "from/flag/4"}
    with pytest.raises(ConfigError, match=r"--roboflow 'Aquarium': expected NAME=WORKSPACE/PROJECT/VERSION"):
        resolve_coordinates(specs, ["Aquarium"], path)


def test_scrub_removes_raw_encoded_and_query_keys():
    text = f"GET /w?api_key={KEY}&x=1 failed; key {KEY}; other ?api_key=abc123&y"
    clean = scrub(text, KEY)
    assert KEY not in clean and "abc123" not in clean and clean.count("***") == 3
    assert scrub("a%2Fb+c", "a/b c") == "***"
