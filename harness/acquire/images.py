"""Every image decodes: the cached, parallel check behind `harness data import`, `harness download`,
`harness doctor` and a job's start-up check.

Each file is decoded once by :func:`scaledet.images.decode_problem` (a small thread pool, PIL decodes
without the GIL; a tqdm bar). A file that decodes is cached in :data:`CACHE_NAME`, a JSON file in the
folder holding the images (a split's folder, beside its annotation json), keyed by its path relative to
that folder with its size and mtime: a file whose size or mtime changed is decoded again; a broken file is
never cached, so it is reported every time. The cache is written atomically; a folder that cannot be
written (a read-only install) only costs the decoding again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from scaledet.data import CocoDataset, check_image_files
from scaledet.errors import DataError
from scaledet.files import atomic_write_text
from scaledet.images import decode_problem

log = logging.getLogger(__name__)

CACHE_NAME = ".scaledet-images.json"
CACHE_VERSION = 1
WORKERS = max(1, min(4, os.cpu_count() or 1))
REPORT_LIMIT = 10  # broken files named in one error message


def _key(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path.resolve())


def _stamp(path: Path) -> list[int] | None:
    """[size, mtime in ns] of ``path``; None when it cannot be stat'ed."""
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def read_cache(folder: Path) -> dict[str, list[int]]:
    """The cached good files of ``folder`` (key -> [size, mtime_ns]); an unreadable cache counts as empty."""
    path = folder / CACHE_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        log.warning("%s: unreadable image-check cache (%s): images are decoded again", path, error)
        return {}
    files = data.get("files") if isinstance(data, dict) and data.get("version") == CACHE_VERSION else None
    if not isinstance(files, dict):
        log.warning("%s: not an image-check cache of version %d: images are decoded again", path, CACHE_VERSION)
        return {}
    return {k: v for k, v in files.items() if isinstance(v, list)}


def remember(folder: Path, good: Iterable[Path]) -> None:
    """Add ``good`` (files known to decode) to ``folder``'s cache, with their current size and mtime."""
    _write_cache(folder, {_key(Path(p), folder): stamp for p in good if (stamp := _stamp(Path(p))) is not None})


def _write_cache(folder: Path, entries: Mapping[str, list[int]]) -> None:
    if not entries:
        return
    cache = {**read_cache(folder), **entries}
    try:
        atomic_write_text(folder / CACHE_NAME, json.dumps({"version": CACHE_VERSION, "files": cache},
                                                          sort_keys=True, separators=(",", ":")))
    except OSError as error:
        log.info("cannot write the image-check cache in %s (%s): the next check decodes again", folder, error)


def verify_images(paths: Sequence[Path], cache_folder: Path | None = None, *, desc: str = "check images",
                  workers: int = WORKERS) -> dict[Path, str]:
    """Decode each of ``paths`` not cached as good in ``cache_folder``; broken file -> why (empty: all good).

    ``cache_folder=None``: nothing is read or written (e.g. an export about to be copied).
    """
    paths = list(dict.fromkeys(Path(p) for p in paths))
    cache = read_cache(cache_folder) if cache_folder is not None else {}
    stamps = {p: _stamp(p) for p in paths}  # taken before decoding: a file changed meanwhile is checked again
    todo = [p for p in paths if cache_folder is None or stamps[p] is None
            or cache.get(_key(p, cache_folder)) != stamps[p]]  # fmt: skip
    problems: dict[Path, str] = {}
    if todo:
        with ThreadPoolExecutor(max_workers=min(workers, len(todo))) as pool, \
                tqdm(total=len(todo), desc=desc, unit="img", disable=len(todo) < 2) as bar:  # fmt: skip
            futures = {pool.submit(decode_problem, p): p for p in todo}
            for future in as_completed(futures):
                if (problem := future.result()) is not None:
                    problems[futures[future]] = problem
                bar.update()
    log.debug("%s: %d images, %d decoded (%d cached), %d broken", desc, len(paths), len(todo),
              len(paths) - len(todo), len(problems))
    if cache_folder is not None and todo:
        _write_cache(cache_folder, {_key(p, cache_folder): stamps[p] for p in todo
                                    if p not in problems and stamps[p] is not None})  # fmt: skip
    return {p: problems[p] for p in paths if p in problems}  # in the order given


def describe(problems: Mapping[Path, str], limit: int = REPORT_LIMIT) -> str:
    """``N image files do not decode: <why>; <why> (and k more)``, naming the first ``limit`` files."""
    shown = list(problems.values())[:limit]
    more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
    files = "1 image file does" if len(problems) == 1 else f"{len(problems)} image files do"
    return f"{files} not decode: {'; '.join(shown)}{more}"


def check_dataset_images(dataset: CocoDataset) -> None:
    """A job's start-up check: every image of ``dataset`` is on disk with the json's size and decodes.

    Header and size first (:func:`scaledet.data.check_image_files`, no decoding), then a full decode of each
    file not cached in ``dataset.image_root``. A problem is a ``DataError`` naming the files.
    """
    check_image_files(dataset)
    paths = [dataset.image_root / image["file_name"] for image in dataset.images]
    problems = verify_images(paths, dataset.image_root, desc=f"check {dataset.name} images")
    if problems:
        raise DataError(f"{dataset.name} ({dataset.image_root}): {describe(problems)}")
