"""Download test fixtures: archives built from the real ODinW data, and HTTP servers on 127.0.0.1.

- ``glip_tree`` / ``roboflow_export_tree``: a dataset of ``/work/shared/data/odinw`` (Roboflow YOLO export)
  as GLIP's layout (``<Name>/<variant>/<split>/annotations_without_background.json`` + images) or as a
  Roboflow COCO export (``<split>/_annotations.coco.json`` + images, id-0 root category kept).
- ``zip_folder`` / ``zip_entries``: zips of those trees, or of hand-made (hostile) entries.
- ``LocalServer``: a threaded HTTP/1.1 server on a free port serving byte strings with Range/If-Range,
  able to cut a response mid-body; it records every request and stops itself after ``stop_after`` s.
- ``RoboflowServer``: the endpoints the real ``roboflow`` client calls for
  ``Roboflow(key).workspace(ws).project(p).version(v)`` and its COCO export, plus the export link.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import stat
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, urlsplit

import pytest
from coco_fixtures import ODINW, yolo_to_coco

from harness.catalog.datasets import DATASETS

SPLITS = ("train", "valid", "test")


def _coco_split(name: str, split: str, out: Path, keep_root: bool) -> dict:
    """COCO json of one real split with ``file_name`` relative to ``out``, the images copied into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = yolo_to_coco(ODINW / name, [split], out / ".tmp.json")
    data = json.loads(tmp.read_text())
    tmp.unlink()
    for image in data["images"]:
        source = Path(image["file_name"])
        shutil.copyfile(source, out / source.name)
        image["file_name"] = source.name
    if not keep_root:
        data["categories"] = [c for c in data["categories"] if c["id"] != 0]
    return data


def glip_tree(dest: Path, name: str) -> Path:
    """``dest/<Name>/<variant>/...`` in GLIP's layout, plus a second variant folder that must be ignored."""
    spec = DATASETS[name]
    variant = dest / name / spec.variant
    for split in SPLITS:
        data = _coco_split(name, split, variant / split, keep_root=False)
        (variant / spec.split_files[split]).write_text(json.dumps(data))
    other = dest / name / "other-variant" / "train"
    other.mkdir(parents=True)
    (other / "annotations_without_background.json").write_text('{"images": [], "annotations": []}')
    shutil.copyfile(ODINW / name / "README.roboflow.txt", dest / name / "README.roboflow.txt")
    return dest / name


def roboflow_export_tree(dest: Path, name: str) -> Path:
    """A Roboflow COCO export of the real dataset: ``dest/<split>/_annotations.coco.json`` + images."""
    for split in SPLITS:
        data = _coco_split(name, split, dest / split, keep_root=True)
        (dest / split / "_annotations.coco.json").write_text(json.dumps(data))
    for readme in ("README.roboflow.txt", "README.dataset.txt"):
        shutil.copyfile(ODINW / name / readme, dest / readme)
    return dest


def zip_folder(folder: Path, out: Path, arc_root: str = "") -> bytes:
    """Zip ``folder`` (stored: images do not compress) with entry names under ``arc_root``; return the bytes."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder).as_posix()
            archive.write(path, f"{arc_root}/{relative}" if arc_root else relative)
    return out.read_bytes()


def zip_entries(out: Path, files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    """A zip of ``files`` (entry name -> bytes) and symbolic-link entries (name -> link target)."""
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return out.read_bytes()


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"


def json_reply(data: object, status: int = 200) -> Reply:
    return Reply(status, json.dumps(data).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client that hung up: recorded, not printed
        self.owner.log_lines.append(f"error while serving {client_address}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10

    def do_GET(self) -> None:
        self.server.owner.handle(self, "GET")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.owner.handle(self, "POST")

    def log_message(self, fmt: str, *args) -> None:  # keep the request lines (they hold keys) off stderr
        self.server.owner.log_lines.append(fmt % args)


@dataclass
class LocalServer:
    """Serves ``files`` (path -> bytes) with Range support; ``cuts[path] = n`` closes the next response after n bytes."""

    files: dict[str, bytes] = field(default_factory=dict)
    pages: dict[str, Reply] = field(default_factory=dict)
    cuts: dict[str, int] = field(default_factory=dict)
    stop_after: float = 120.0
    requests: list[Seen] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)

    def __enter__(self) -> Self:
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        self.watchdog = threading.Timer(self.stop_after, self.httpd.shutdown)
        self.watchdog.daemon = True
        self.watchdog.start()
        return self

    def __exit__(self, *exc) -> None:
        self.watchdog.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def paths(self, method: str = "GET") -> list[str]:
        return [seen.path for seen in self.requests if seen.method == method]

    def reply(self, method: str, path: str, query: dict[str, list[str]]) -> Reply | None:
        return self.pages.get(path)

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        query = parse_qs(url.query)
        self.requests.append(Seen(method, url.path, query, dict(handler.headers)))
        if method == "GET" and url.path in self.files:
            return self._send_file(handler, url.path, self.files[url.path])
        reply = self.reply(method, url.path, query) or Reply(404, b'{"error": "not found"}')
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        handler.wfile.write(reply.body)

    def _send_file(self, handler: BaseHTTPRequestHandler, path: str, data: bytes) -> None:
        etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
        wanted = re.fullmatch(r"bytes=(\d+)-", handler.headers.get("Range", ""))
        if_range = handler.headers.get("If-Range")
        start = int(wanted[1]) if wanted and (if_range is None or if_range == etag) else 0
        if start >= len(data) > 0:
            handler.send_response(416)
            handler.send_header("Content-Range", f"bytes */{len(data)}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        body = data[start:]
        handler.send_response(206 if start else 200)
        handler.send_header("Content-Type", "application/zip")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("ETag", etag)
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        cut = self.cuts.pop(path, None)
        if cut is None:
            handler.wfile.write(body)
            return
        handler.wfile.write(body[:cut])
        handler.wfile.flush()
        handler.close_connection = True  # the server closes the socket short of Content-Length


@dataclass
class RoboflowServer(LocalServer):
    """The Roboflow API as the client sees it, for ``exports[(ws, project, version)] = zip bytes``.

    A request whose ``api_key`` is not ``api_key`` gets 401 with the key echoed in the body (as careless
    servers and proxies do), so tests prove the harness scrubs it; ``deny[path] = status`` refuses a path.
    """

    api_key: str = "valid-key"
    exports: dict[tuple[str, str, int], bytes] = field(default_factory=dict)
    deny: dict[str, int] = field(default_factory=dict)

    def reply(self, method: str, path: str, query: dict[str, list[str]]) -> Reply | None:
        key = query.get("api_key", [""])[0]
        if key != self.api_key:
            return json_reply({"error": {"message": f"This API key does not exist (or has been revoked): {key}",
                                         "type": "OAuthException", "hint": f"{path}?api_key={key}"}}, 401)
        if path in self.deny:
            return json_reply({"error": f"key {key} has no access to {path}"}, self.deny[path])
        parts = [p for p in path.split("/") if p]
        if method == "POST" and not parts:
            workspace = next(iter(self.exports))[0]
            return json_reply({"welcome": "Welcome to the Roboflow API.", "workspace": workspace})
        handlers = {1: self._workspace, 2: self._project, 3: self._version, 4: self._export}
        return handlers[len(parts)](*parts) if method == "GET" and len(parts) in handlers else None

    def _projects(self, workspace: str) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for ws, project, version in self.exports:
            if ws == workspace:
                found.setdefault(project, []).append(version)
        return found

    def _project_info(self, workspace: str, project: str) -> dict:
        return {"id": f"{workspace}/{project}", "name": project, "type": "object-detection",
                "annotation": project, "classes": {}, "colors": {}, "created": 1600000000.0,
                "updated": 1600000000.0, "images": 26, "public": True, "splits": {}, "unannotated": 0,
                "versions": len(self._projects(workspace).get(project, []))}

    def _version_info(self, workspace: str, project: str, version: int) -> dict:
        return {"id": f"{workspace}/{project}/{version}", "name": project, "version": str(version),
                "created": 1600000000.0, "images": 26, "splits": {"train": 19, "valid": 4, "test": 3},
                "augmentation": {}, "preprocessing": {}, "exports": [], "generating": False, "progress": 1.0}

    def _workspace(self, workspace: str) -> Reply | None:
        projects = self._projects(workspace)
        if not projects:
            return None
        return json_reply({"workspace": {"name": workspace, "url": workspace, "members": [],
                                         "projects": [self._project_info(workspace, p) for p in projects]}})

    def _project(self, workspace: str, project: str) -> Reply | None:
        versions = self._projects(workspace).get(project)
        if not versions:
            return None
        return json_reply({"workspace": {"name": workspace, "url": workspace},
                           "project": self._project_info(workspace, project),
                           "versions": [self._version_info(workspace, project, v) for v in versions]})

    def _version(self, workspace: str, project: str, version: str) -> Reply | None:
        if (workspace, project, int(version)) not in self.exports:
            return None
        return json_reply({"workspace": {"name": workspace, "url": workspace},
                           "project": self._project_info(workspace, project),
                           "version": self._version_info(workspace, project, int(version))})

    def _export(self, workspace: str, project: str, version: str, fmt: str) -> Reply | None:
        data = self.exports.get((workspace, project, int(version)))
        if data is None or fmt != "coco":
            return None
        link = f"/ds/{workspace}-{project}-{version}.zip"
        self.files[link] = data
        return json_reply({"export": {"link": f"{self.url}{link}?key=signed-download-token", "format": fmt}})


# The GLIP-mirror tests' shared data: the real Mushrooms data as GLIP's zip, and a local server per test.
MUSHROOMS = "NorthAmericaMushrooms"
MUSHROOMS_ZIP_PATH = f"/odinw_35/{MUSHROOMS}.zip"


@pytest.fixture(scope="module")
def mushrooms_zip(tmp_path_factory) -> bytes:
    """GLIP's zip of the real Mushrooms data: ``NorthAmericaMushrooms/<variant>/<split>/...`` + another variant."""
    tmp = tmp_path_factory.mktemp("glip")
    return zip_folder(glip_tree(tmp / "tree", MUSHROOMS), tmp / f"{MUSHROOMS}.zip", arc_root=MUSHROOMS)


@pytest.fixture
def server():
    with LocalServer(stop_after=60) as running:
        yield running
