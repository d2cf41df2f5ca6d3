"""Download ODinW datasets into the data root, verified: ``harness download``.

Per dataset: fetch the source's zip (resumable, :mod:`harness.acquire.fetch`) into ``<root>/odinw/.downloads``,
compare its sha256 with the lock file (:mod:`harness.acquire.lock`; recorded on the first verified
download), unpack it into a staging folder (:mod:`harness.acquire.archives`: entries escaping the folder are
refused), check the registry's categories, image files (each decoded once: :mod:`harness.acquire.images`)
and image/box counts, then move the folder into ``spec.folder(root)`` and mark the dataset complete. A
dataset already complete is left alone.

Sources are objects (see :class:`Source`): :class:`GlipMirror` (GLIP's Hugging Face mirror, one zip per
dataset holding every variant; only the registry's variant is kept) and
:class:`harness.acquire.roboflow.RoboflowExport` (the real ``roboflow`` client, COCO export, converted by
``harness.acquire.importers``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from harness.acquire.archives import extract
from harness.acquire.fetch import Fetched, fetch, redact_url, sha256_file
from harness.acquire.images import describe, verify_images
from harness.acquire.lock import DownloadLock
from harness.catalog.datasets import (
    DatasetSpec,
    data_root,
    get_dataset,
    load_split,
    require_suite_of_datasets,
)
from scaledet.errors import DataError
from scaledet.names import check_name

log = logging.getLogger(__name__)

GLIP_URL = "https://huggingface.co/GLIPModel/GLIP/resolve/main/odinw_35"
GLIP_URL_ENV = "SCALEDET_GLIP_URL"
DOWNLOADS = ".downloads"
STAGING = ".staging"


class Source(Protocol):
    """Where archives come from: a lock key, what the lock records, fetching and unpacking."""

    name: ClassVar[str]

    def key(self, spec: DatasetSpec) -> str: ...

    def describe(self, spec: DatasetSpec) -> dict[str, str]: ...

    def fetch(self, spec: DatasetSpec, dest: Path, *, attempts: int, timeout: float) -> Fetched: ...

    def unpack(self, spec: DatasetSpec, archive: Path, staging: Path) -> None: ...


@dataclass(frozen=True)
class GlipMirror:
    """GLIP's mirror: ``<base_url>/<Name>.zip`` with entries ``<Name>/<variant>/<split>/…`` (one zip holds every
    variant of a dataset: ``spec.archive_name``)."""

    base_url: str = field(default_factory=lambda: os.environ.get(GLIP_URL_ENV) or GLIP_URL)
    name: ClassVar[str] = "glip"

    def url(self, spec: DatasetSpec) -> str:
        return f"{self.base_url.rstrip('/')}/{spec.archive_name}.zip"

    def key(self, spec: DatasetSpec) -> str:
        return self.name

    def describe(self, spec: DatasetSpec) -> dict[str, str]:
        return {"url": redact_url(self.url(spec))}

    def fetch(self, spec: DatasetSpec, dest: Path, *, attempts: int, timeout: float) -> Fetched:
        return fetch(self.url(spec), dest, desc=spec.name, attempts=attempts, timeout=timeout)

    def unpack(self, spec: DatasetSpec, archive: Path, staging: Path) -> None:
        prefix = "/".join(part for part in (spec.archive_name, spec.variant) if part)
        extract(archive, spec.folder(staging), prefix=prefix, label=f"{spec.archive_name}.zip")


@dataclass(frozen=True)
class DownloadResult:
    """What ``download`` did for one dataset."""

    name: str
    status: str  # "downloaded" | "up to date" | "present, not downloaded here"
    folder: Path
    sha256: str | None = None
    images: Mapping[str, int] = field(default_factory=dict)
    boxes: Mapping[str, int] = field(default_factory=dict)
    resumed_from: int = 0  # bytes an earlier interrupted transfer had left


def select(suite: str = "odinw13", only: Iterable[str] = ()) -> list[DatasetSpec]:
    """The registry records to download: the suite's datasets, or those of ``only`` (checked names)."""
    record = require_suite_of_datasets(suite)
    if suite == "demo":
        log.info("suite 'demo' ships with the package (harness/data/demo): nothing to download")
        return []
    names = [check_name(f"dataset of suite {suite!r}", name, record.datasets) for name in only] or record.datasets
    return [get_dataset(name) for name in dict.fromkeys(names)]


def download(specs: Sequence[DatasetSpec], source: Source | None = None, root: Path | None = None, *,
             attempts: int = 3, timeout: float = 60.0) -> list[DownloadResult]:
    """Download and verify each of ``specs`` from ``source`` (default: the GLIP mirror) under ``root``."""
    source = source or GlipMirror()
    root = Path(root) if root is not None else data_root()
    # variants of one dataset share GLIP's archive: it is fetched once and kept until the last of them is done
    archives = [_archive(spec, source, root) for spec in specs]
    return [download_one(spec, source, root, attempts=attempts, timeout=timeout,
                         keep_archive=archives[i] in archives[i + 1:]) for i, spec in enumerate(specs)]


def _archive(spec: DatasetSpec, source: Source, root: Path) -> Path:
    """Where ``spec``'s archive from ``source`` is downloaded to (one file for variants that share it)."""
    return root / "odinw" / DOWNLOADS / f"{spec.archive_name}.{_slug(source.key(spec))}.zip"


def download_one(spec: DatasetSpec, source: Source, root: Path, *, attempts: int = 3,
                 timeout: float = 60.0, keep_archive: bool = False) -> DownloadResult:
    """One dataset: skip it when complete, else fetch, check the checksum, unpack, verify, move, record.
    ``keep_archive``: leave the archive for another variant of the dataset (else it is deleted)."""
    lock = DownloadLock(root)
    folder = spec.folder(root)
    key = source.key(spec)
    archive = _archive(spec, source, root)
    skipped = _already_there(spec, lock, root)
    if skipped:
        if not keep_archive:  # one an earlier variant of this run kept
            archive.unlink(missing_ok=True)
            _remove_if_empty(archive.parent)
        return skipped
    fetched = _reuse(archive) or source.fetch(spec, archive, attempts=attempts, timeout=timeout)
    try:
        _check_sha(spec, lock, key, fetched)
        images, boxes = _install(spec, source, fetched.path, root)
    except DataError:
        archive.unlink(missing_ok=True)  # a bad archive is not resumed or reused
        _remove_if_empty(archive.parent)
        raise
    lock.mark_complete(spec.name, source_key=key, variant=spec.variant, images=images, boxes=boxes,
                       archive={"sha256": fetched.sha256, "bytes": fetched.size, **source.describe(spec)})
    if not keep_archive:
        archive.unlink(missing_ok=True)
        _remove_if_empty(archive.parent)
    log.info("%s: downloaded from %s and verified (sha256 %s, %s images) into %s", spec.name, key,
             fetched.sha256, sum(images.values()), folder)
    return DownloadResult(spec.name, "downloaded", folder, fetched.sha256, images, boxes, fetched.resumed_from)


def _already_there(spec: DatasetSpec, lock: DownloadLock, root: Path) -> DownloadResult | None:
    folder = spec.folder(root)
    entry = lock.entry(spec.name)
    if entry.get("complete") and spec.is_present(root):
        sha = entry.get("archives", {}).get(entry.get("source"), {}).get("sha256")
        log.info("%s: already downloaded and verified (%s, sha256 %s) at %s; nothing to do", spec.name,
                 entry.get("source"), sha, folder)
        return DownloadResult(spec.name, "up to date", folder, sha, entry.get("images", {}), entry.get("boxes", {}))
    if entry.get("complete"):
        log.warning("%s: marked complete but %s is missing files; downloading it again", spec.name, folder)
        lock.mark_incomplete(spec.name)
    elif spec.is_present(root):
        log.info("%s: present at %s but not downloaded by `harness download` (no recorded checksum); left as "
                 "is (move it away to download it)", spec.name, folder)
        return DownloadResult(spec.name, "present, not downloaded here", folder)
    return None


def _reuse(archive: Path) -> Fetched | None:
    """A complete archive left by a run that stopped after its download (e.g. disk full while unpacking)."""
    if not archive.is_file():
        return None
    log.info("reusing the complete download %s", archive)
    return Fetched(archive, archive.stat().st_size, sha256_file(archive), archive.stat().st_size)


def _check_sha(spec: DatasetSpec, lock: DownloadLock, key: str, fetched: Fetched) -> None:
    expected = lock.archive_sha(spec.name, key)
    if expected and expected != fetched.sha256:
        raise DataError(f"{spec.name}: checksum mismatch for the {key} archive: the lock file {lock.path} "
                        f"expects sha256 {expected}, the download has sha256 {fetched.sha256}; the download "
                        "is corrupt or the archive changed upstream. It was deleted and nothing was installed: "
                        "run again to re-download, or delete the entry from the lock file to accept the new "
                        "archive")
    if not expected:
        log.info("%s: first download of the %s archive: recording sha256 %s", spec.name, key, fetched.sha256)


def _install(spec: DatasetSpec, source: Source, archive: Path, root: Path) -> tuple[dict, dict]:
    """Unpack into a staging root on the same file system, verify, then move into ``spec.folder(root)``."""
    base = root / "odinw" / STAGING
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{spec.name}-", dir=base))
    try:
        source.unpack(spec, archive, staging)
        counts = verify(spec, staging)
        target = spec.folder(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # an incomplete earlier copy: replaced, removed with the staging folder
            os.replace(target, staging / "replaced")
        os.replace(spec.folder(staging), target)
        return counts
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_if_empty(base)


def verify(spec: DatasetSpec, root: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Categories, image files (present and decoding) and image/box counts of ``spec`` under ``root``
    against the registry."""
    images, boxes, problems = {}, {}, []
    for split in spec.splits:
        path = spec.annotation_path(split, root)
        if not path.is_file():
            problems.append(f"split {split}: no {spec.split_files[split]} in the archive")
            continue
        data = load_split(spec, split, root)
        images[split], boxes[split] = len(data.images), len(data.source["annotations"])
        missing = [img["file_name"] for img in data.images if not (data.image_root / img["file_name"]).is_file()]
        if missing:
            problems.append(f"split {split}: {len(missing)} listed image files are missing (first {missing[0]!r})")
        else:  # every file decodes (cached beside the split's json, moved into place with it)
            broken = verify_images([data.image_root / img["file_name"] for img in data.images],
                                    data.image_root, desc=f"check {spec.name} {split} images")
            if broken:
                problems.append(f"split {split}: {describe(broken)}")
        for what, found, expected in (("images", images, spec.images), ("boxes", boxes, spec.boxes)):
            if expected.get(split) is not None and found[split] != expected[split]:
                problems.append(f"split {split}: {found[split]} {what}, the registry expects {expected[split]}")
    if problems:
        raise DataError(f"{spec.name}: the downloaded copy does not match the registry (harness/catalog/datasets.py): "
                        + "; ".join(problems) + "; nothing was installed")
    return images, boxes


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
