"""The download lock file ``<root>/odinw/odinw.lock.json``: archive checksums and what is complete on disk.

No upstream checksums exist for ODinW, so the sha256 of each archive is recorded the first time it is
downloaded and verified, and every later download of the same archive must match it. Format::

    {"format": "scaledet-odinw-lock/1",
     "datasets": {"Packages": {
         "complete": true, "source": "glip", "variant": "Raw", "verified_at": "2025-01-01T00:00:00Z",
         "images": {"train": 19, "valid": 4, "test": 3}, "boxes": {"train": 31, "valid": 6, "test": 5},
         "archives": {"glip": {"sha256": "…", "bytes": 8123456, "url": "https://…/Packages.zip",
                               "recorded_at": "…"},
                      "roboflow:joseph-nelson/packages-g0ton/6": {"sha256": "…", "bytes": …, …}}}}}

``archives`` is keyed by source (the GLIP mirror, or one Roboflow workspace/project/version), so each
archive is compared only with itself. ``complete`` is true only while the dataset's folder holds a
verified copy. Every change re-reads the file and replaces it atomically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scaledet.errors import DataError
from scaledet.files import atomic_write_text

LOCK_NAME = "odinw.lock.json"
LOCK_FORMAT = "scaledet-odinw-lock/1"


def lock_path(root: Path) -> Path:
    return Path(root) / "odinw" / LOCK_NAME


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON atomically (``scaledet.files``)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


class DownloadLock:
    """Read and update the lock file of one data root."""

    def __init__(self, root: Path):
        self.path = lock_path(root)

    def read(self) -> dict[str, dict[str, Any]]:
        """Every dataset's entry (empty when the file does not exist yet)."""
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as error:
            raise DataError(f"{self.path}: cannot read the download lock file ({error}); "
                            "fix or delete it (checksums recorded in it are then recorded again)") from None
        if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT or not isinstance(
                data.get("datasets"), dict):
            raise DataError(f"{self.path}: field 'format' must be {LOCK_FORMAT!r} with a 'datasets' mapping")
        return data["datasets"]

    def entry(self, name: str) -> dict[str, Any]:
        return self.read().get(name, {})

    def is_complete(self, name: str) -> bool:
        return bool(self.entry(name).get("complete"))

    def archive_sha(self, name: str, source_key: str) -> str | None:
        return self.entry(name).get("archives", {}).get(source_key, {}).get("sha256")

    def mark_incomplete(self, name: str) -> None:
        if self.entry(name).get("complete"):
            self._update(name, {"complete": False})

    def mark_complete(self, name: str, *, source_key: str, archive: Mapping[str, Any], variant: str,
                      images: Mapping[str, int], boxes: Mapping[str, int]) -> None:
        """Record a verified copy on disk and, the first time, its archive's checksum."""
        archives = dict(self.entry(name).get("archives", {}))
        archives.setdefault(source_key, {**archive, "recorded_at": now()})
        self._update(name, {"complete": True, "source": source_key, "variant": variant, "verified_at": now(),
                            "images": dict(images), "boxes": dict(boxes), "archives": archives})

    def _update(self, name: str, changes: Mapping[str, Any]) -> None:
        datasets = self.read()
        datasets[name] = {**datasets.get(name, {}), **changes}
        write_json_atomic(self.path, {"format": LOCK_FORMAT, "datasets": datasets})
