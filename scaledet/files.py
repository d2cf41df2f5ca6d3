"""Atomic file writes (a temp file in the same folder, fsync, ``os.replace``: a reader never sees half a file), and
the cache folder derived files go to."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

CACHE_ENV = "SCALEDET_CACHE"  # the folder of derived caches (label embeddings, converted datasets), if set


def cache_dir(name: str) -> Path:
    """``$SCALEDET_CACHE/<name>``, else ``<name>`` in the user cache dir (``~/.cache/scaledet`` on Linux)."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root) / name
    import platformdirs

    return Path(platformdirs.user_cache_dir("scaledet")) / name


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` via a temp file in the same folder, fsync, ``os.replace``."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file of its own in the same folder, fsync, ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` via a temp file of its own in the same folder (several processes may write the same path at
    once, e.g. a shared cache), fsync, ``os.replace``; the temp file is removed on failure, so neither a
    half-written file nor a stray temp file is left."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)  # the name is reserved; torch writes by path (its fast native writer)
    tmp = Path(name)
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
