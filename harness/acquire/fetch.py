"""Resumable HTTP downloads of archives: Range requests, a tqdm bar, zip sniffing, sha256.

A download goes to ``<dest>.part``; an interrupted transfer leaves it there and the next attempt (in the
same call or a later run) asks for the rest with ``Range: bytes=<size>-`` (plus ``If-Range`` when the
server gave a strong validator, so a changed file restarts from zero instead of being spliced). The
validator and size live beside the partial file in ``<dest>.part.json``. Only a complete body is renamed
to ``dest``. URLs are logged and reported without their query string (signed links carry keys there).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from tqdm import tqdm

from harness import __version__
from harness.acquire.lock import write_json_atomic
from scaledet.errors import DataError

log = logging.getLogger(__name__)

CHUNK = 1 << 16
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or the end record of an empty zip
USER_AGENT = f"scaledet-harness/{__version__}"
RETRY_PAUSE = 1.0  # seconds before the second try, twice that before the third, ...


@dataclass(frozen=True)
class Fetched:
    """A completed download: where it is, its size and sha256, and how many bytes an earlier try left."""

    path: Path
    size: int
    sha256: str
    resumed_from: int


class Interrupted(Exception):
    """The connection broke mid-body; the partial file stays for a resume."""


def redact_url(url: str) -> str:
    """``url`` without query and fragment (signed links and API keys travel there)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: Path, *, desc: str, attempts: int = 3, timeout: float = 60.0) -> Fetched:
    """Download ``url`` to ``dest`` (via ``dest.part``), resuming a partial file; the body must be a zip.

    Raises ``DataError`` naming the (query-less) URL for HTTP errors, a body that is not a zip, and a
    transfer still interrupted after ``attempts`` tries (the partial file is kept for the next run).
    ``Fetched.resumed_from`` is the size of the partial file found when the call began.
    """
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    start = part.stat().st_size if part.is_file() else 0
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        failure = _with_retries(session, url, part, desc=desc, attempts=max(1, attempts), timeout=timeout)
    if failure:
        kept = part.stat().st_size if part.is_file() else 0
        if not kept:
            _meta_path(part).unlink(missing_ok=True)
            _remove_if_empty(part.parent)
        resume = f"{kept} bytes kept in {part}: run the command again to resume" if kept else "nothing was kept"
        tries = "1 try" if attempts <= 1 else f"{attempts} tries"
        raise DataError(f"{desc}: download of {redact_url(url)} failed after {tries} (last: {failure}); {resume}")
    _meta_path(part).unlink(missing_ok=True)
    os.replace(part, dest)
    return Fetched(dest, dest.stat().st_size, sha256_file(dest), resumed_from=start)


def _with_retries(session: requests.Session, url: str, part: Path, *, desc: str, attempts: int,
                  timeout: float) -> str | None:
    """Transfer until complete (``None``) or ``attempts`` interruptions (the last one's description)."""
    for attempt in range(1, attempts + 1):
        try:
            _transfer(session, url, part, desc=desc, timeout=timeout)
            return None
        except Interrupted as error:
            log.warning("%s: %s (try %d of %d)", desc, error, attempt, attempts)
            if attempt == attempts:
                return str(error)
            time.sleep(RETRY_PAUSE * attempt)
    return None


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _read_meta(part: Path) -> dict:
    try:
        return json.loads(_meta_path(part).read_text())
    except (OSError, ValueError):
        return {}


def _range_headers(part: Path) -> tuple[int, dict[str, str]]:
    offset = part.stat().st_size if part.is_file() else 0
    if offset == 0:
        return 0, {}
    headers = {"Range": f"bytes={offset}-"}
    validator = _read_meta(part).get("validator")
    if validator:
        headers["If-Range"] = validator
    return offset, headers


def _transfer(session: requests.Session, url: str, part: Path, *, desc: str, timeout: float) -> None:
    offset, headers = _range_headers(part)
    shown = redact_url(url)
    try:
        response = session.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.ConnectionError as error:
        raise Interrupted(f"cannot connect to {shown}: {type(error).__name__}") from None
    except requests.RequestException as error:
        raise DataError(f"{desc}: request to {shown} failed: {type(error).__name__}") from None
    with response:
        if response.status_code == 416 and offset:
            offset = _after_416(response, part, desc)
            if offset is None:
                return
            raise Interrupted("the server refused the resume range; starting again from zero")
        if response.status_code >= 400:
            raise DataError(f"{desc}: {shown} answered HTTP {response.status_code} {response.reason}; "
                            "expected the dataset's zip archive")
        append = offset > 0 and response.status_code == 206 and _range_start(response) == offset
        if offset and not append:
            log.info("%s: the server did not resume at byte %d; downloading from the start", desc, offset)
        _check_not_html(response, shown, desc)
        _write_body(response, part, append=append, offset=offset if append else 0, desc=desc, shown=shown)


def _after_416(response: requests.Response, part: Path, desc: str) -> int | None:
    """A 416 on a resume: ``None`` when the partial file already holds the whole body, else restart."""
    total = response.headers.get("Content-Range", "").rpartition("/")[2]
    if total.isdigit() and int(total) == part.stat().st_size:
        log.info("%s: the partial file is already complete (%s bytes)", desc, total)
        return None
    part.unlink()
    _meta_path(part).unlink(missing_ok=True)
    return 0


def _range_start(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Range", "")  # "bytes 100-999/1000"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _total_size(response: requests.Response, offset: int) -> int | None:
    if response.status_code == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _check_not_html(response: requests.Response, shown: str, desc: str) -> None:
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml"):
        raise DataError(f"{desc}: {shown} answered a web page ({kind}) instead of a zip archive; "
                        "check the URL (GLIP's mirror path is /resolve/main/odinw_35/<Name>.zip, not /tree/)")


def _write_body(response: requests.Response, part: Path, *, append: bool, offset: int, desc: str,
                shown: str) -> None:
    validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
    strong = validator if validator and not validator.startswith("W/") else None
    total = _total_size(response, offset)
    write_json_atomic(_meta_path(part), {"validator": strong, "total": total})
    first = not append
    with open(part, "ab" if append else "wb") as stream, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
            mininterval=0.5, leave=False) as bar:
        try:
            for chunk in response.iter_content(CHUNK):
                if first:
                    _check_zip_start(chunk, part, shown, desc)
                    first = False
                stream.write(chunk)
                bar.update(len(chunk))
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, OSError) as error:
            stream.flush()
            raise Interrupted(f"connection broken after {stream.tell()} bytes: {type(error).__name__}") from None
        if first:
            _check_zip_start(b"", part, shown, desc)
    size = part.stat().st_size
    if total is not None and size != total:
        raise Interrupted(f"connection closed after {size} of {total} bytes")


def _check_zip_start(chunk: bytes, part: Path, shown: str, desc: str) -> None:
    if chunk[:4] in ZIP_MAGIC:
        return
    part.unlink(missing_ok=True)
    _meta_path(part).unlink(missing_ok=True)
    text = chunk[:200].decode("utf-8", "replace")
    hint = "a web page" if "<" in text[:20] else "not a zip archive"
    raise DataError(f"{desc}: {shown} answered {hint} (starts with {text[:60]!r}); expected a zip archive")
