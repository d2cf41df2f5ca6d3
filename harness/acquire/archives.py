"""Safe zip extraction: every entry is checked before anything is written.

An entry with an absolute path (``/x``, ``C:\\x``), a ``..`` component, or a symbolic-link mode refuses the
whole archive with a ``DataError`` naming the entry; extraction writes regular files and folders only,
each checked again to resolve inside the target folder. A CRC or truncation error names the entry too.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from scaledet.errors import DataError

_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why extracting ``info`` could write outside the target folder, or ``None`` when it is safe."""
    name = info.filename.replace("\\", "/")
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if name.startswith("/") or _DRIVE.match(name):
        return "has an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "has a '..' component that escapes the target folder"
    if "\x00" in name:
        return "has a NUL byte in its name"
    return None


def open_checked(path: Path, label: str) -> zipfile.ZipFile:
    """Open the zip at ``path`` after checking every entry; ``label`` names it in errors."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(f"{label}: {path} is not a readable zip archive ({error})") from None
    for info in archive.infolist():
        reason = unsafe_reason(info)
        if reason:
            archive.close()
            raise DataError(f"{label}: refused: zip entry {info.filename!r} {reason}; nothing was extracted")
    return archive


def members_under(archive: zipfile.ZipFile, prefix: str) -> list[zipfile.ZipInfo]:
    """The entries below the folder ``prefix`` (``""``: all), with ``/`` separators."""
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    return [info for info in archive.infolist() if info.filename.replace("\\", "/").startswith(prefix)
            and len(info.filename.rstrip("/")) > len(prefix.rstrip("/"))]


def top_folders(archive: zipfile.ZipFile, depth: int = 2) -> list[str]:
    """The distinct first ``depth`` path components of the entries, for messages."""
    found = {"/".join(info.filename.replace("\\", "/").split("/")[:depth]) for info in archive.infolist()}
    return sorted(found)


def extract(path: Path, dest: Path, *, prefix: str = "", label: str) -> int:
    """Extract the entries of ``path`` below ``prefix`` into ``dest`` (prefix stripped); return files written."""
    with open_checked(path, label) as archive:
        members = members_under(archive, prefix)
        if not members:
            raise DataError(f"{label}: {path.name} has no entries under {prefix!r}; its top folders are "
                            f"{top_folders(archive)}")
        _check_space(members, dest, label)
        strip = len(prefix.strip("/") + "/") if prefix.strip("/") else 0
        return _write(archive, members, dest, strip, label)


def _check_space(members: list[zipfile.ZipInfo], dest: Path, label: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    needed = sum(info.file_size for info in members)
    free = shutil.disk_usage(dest).free
    if needed > free:
        raise DataError(f"{label}: extracting needs {needed / 2**30:.2f} GiB but {dest} has "
                        f"{free / 2**30:.2f} GiB free")


def _write(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], dest: Path, strip: int,
           label: str) -> int:
    root = dest.resolve()
    written = 0
    with tqdm(total=sum(i.file_size for i in members), unit="B", unit_scale=True, unit_divisor=1024,
              desc=f"{label}: extracting", mininterval=0.5, leave=False) as bar:
        for info, target in list(_targets(members, root, strip, label)):  # every entry checked first
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as source, open(target, "wb") as out:
                    for block in iter(lambda: source.read(1 << 20), b""):
                        out.write(block)
                        bar.update(len(block))
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
                raise DataError(f"{label}: zip entry {info.filename!r} is corrupt ({error})") from None
            written += 1
    return written


def _targets(members: list[zipfile.ZipInfo], root: Path, strip: int,
             label: str) -> Iterator[tuple[zipfile.ZipInfo, Path]]:
    for info in members:
        relative = info.filename.replace("\\", "/")[strip:]
        target = (root / relative).resolve()
        if target != root and root not in target.parents:
            raise DataError(f"{label}: refused: zip entry {info.filename!r} resolves outside {root}")
        yield info, target
