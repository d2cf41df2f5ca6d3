"""Roboflow as a download source: per-dataset coordinates, the real ``roboflow`` client, key hygiene.

Coordinates (``workspace/project/version``) come from, in order: ``--roboflow NAME=ws/project/version``,
a YAML file (``roboflow: {NAME: ws/project/version}``, loaded strictly), the registry's default
(``DatasetSpec.roboflow``). The client (``roboflow.Roboflow(key).workspace(ws).project(p).version(v)``) is
asked for the version's COCO export link; the zip itself is fetched by :mod:`harness.acquire.fetch` so it can be
resumed and checksummed. The client reads its server from ``API_URL`` (default https://api.roboflow.com).

The API key comes from ``ROBOFLOW_API_KEY``. It never reaches a log record, an error message or a file:
client output goes to the debug log and every log record, client error and URL is scrubbed of it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote, quote_plus

import yaml

from harness.acquire.archives import extract
from harness.acquire.fetch import Fetched, fetch
from harness.catalog.datasets import DATASETS, DatasetSpec
from scaledet.errors import ConfigError, DataError
from scaledet.names import check_name

log = logging.getLogger(__name__)

API_KEY_ENV = "ROBOFLOW_API_KEY"
EXPORT_FORMAT = "coco"
CONFIG_KEYS = ("roboflow",)
_COORDINATES = re.compile(r"^([\w.-]+)/([\w.-]+)/([1-9][0-9]*)$")
_KEY_IN_URL = re.compile(r"(api_key=)[^&\s'\"]+")
HOW_TO_PASS = ("pass --roboflow {name}=WORKSPACE/PROJECT/VERSION, or add '{name}: WORKSPACE/PROJECT/VERSION' "
               "under 'roboflow:' in a --roboflow-config YAML file")


@dataclass(frozen=True)
class RoboflowCoordinates:
    """One Roboflow dataset version: ``workspace/project/version``."""

    workspace: str
    project: str
    version: int

    def __str__(self) -> str:
        return f"{self.workspace}/{self.project}/{self.version}"

    @classmethod
    def parse(cls, text: object, where: str) -> RoboflowCoordinates:
        match = _COORDINATES.match(text.strip()) if isinstance(text, str) else None
        if not match:
            raise ConfigError(f"{where}: expected WORKSPACE/PROJECT/VERSION (e.g. joseph-nelson/packages-g0ton/6), "
                              f"got {text!r}")
        return cls(match[1], match[2], int(match[3]))


def parse_pairs(pairs: Iterable[str]) -> dict[str, RoboflowCoordinates]:
    """``NAME=workspace/project/version`` strings (``--roboflow``) as coordinates per dataset."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--roboflow {pair!r}: expected NAME=WORKSPACE/PROJECT/VERSION")
        name = check_name("dataset", name.strip(), DATASETS, where=f"--roboflow {pair!r}")
        out[name] = RoboflowCoordinates.parse(value, f"--roboflow {pair!r}")
    return out


def load_config(path: Path) -> dict[str, RoboflowCoordinates]:
    """A ``--roboflow-config`` file: ``roboflow:`` mapping dataset names to ``workspace/project/version``."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the Roboflow config ({error})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with key 'roboflow', got {type(data).__name__}")
    for key in data:
        check_name("key", str(key), CONFIG_KEYS, where=str(path))
    table = data.get("roboflow") or {}
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: field 'roboflow' must map dataset names to WORKSPACE/PROJECT/VERSION")
    return {check_name("dataset", str(name), DATASETS, where=f"{path}: roboflow"):
            RoboflowCoordinates.parse(value, f"{path}: field 'roboflow.{name}'") for name, value in table.items()}


def resolve_coordinates(specs: Sequence[DatasetSpec], pairs: Iterable[str] = (),
                        config: Path | None = None) -> dict[str, RoboflowCoordinates]:
    """Coordinates of every dataset in ``specs``; datasets with none fail together, saying what to pass."""
    chosen = {spec.name: RoboflowCoordinates.parse(spec.roboflow, f"registry default of {spec.name}")
              for spec in specs if spec.roboflow}
    chosen.update(load_config(config) if config else {})
    chosen.update(parse_pairs(pairs))
    missing = [spec.name for spec in specs if spec.name not in chosen]
    if missing:
        how = "; ".join(HOW_TO_PASS.format(name=name) for name in missing)
        raise ConfigError(f"no Roboflow coordinates for {', '.join(missing)} (the registry has no default): {how}")
    return {spec.name: chosen[spec.name] for spec in specs}


def api_key_from_env() -> str:
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise ConfigError(f"the Roboflow source needs an API key in the environment variable {API_KEY_ENV} "
                          "(https://app.roboflow.com/settings/api); or use --source glip")
    return key


def scrub(text: str, secret: str) -> str:
    """``text`` with ``secret`` (raw or URL-encoded) and any ``api_key=…`` value replaced by ``***``."""
    for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
        if form:
            text = text.replace(form, "***")
    return _KEY_IN_URL.sub(r"\1***", text)


@contextlib.contextmanager
def scrubbed_logging(secret: str) -> Iterator[None]:
    """While active, every log record (ours, ``requests``', ``urllib3``'s, the client's) is scrubbed."""
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: left to the handler's own error path
            return record
        clean = scrub(message, secret)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info), secret)
            record.exc_info = None
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)


class _LogWriter(io.TextIOBase):
    """A stdout stand-in that sends the client's prints to the debug log, scrubbed."""

    def __init__(self, secret: str):
        self.secret = secret

    def write(self, text: str) -> int:
        for line in text.replace("\r", "\n").splitlines():
            if line.strip():
                log.debug("roboflow client: %s", scrub(line.strip(), self.secret))
        return len(text)


def _client():
    try:
        import roboflow
        from roboflow.adapters import rfapi
        from roboflow.config import refresh_region_urls
    except ImportError:
        raise ConfigError("the Roboflow source needs the roboflow client: pip install 'scaledet-harness[roboflow]'") \
            from None
    refresh_region_urls()  # honour an API_URL set after roboflow was first imported (tests, notebooks)
    return roboflow, rfapi


def export_link(api_key: str, where: RoboflowCoordinates, label: str) -> str:
    """The download link of the COCO export of ``where``, through the real client (export made if needed)."""
    roboflow, rfapi = _client()
    failure = None
    with scrubbed_logging(api_key), contextlib.redirect_stdout(_LogWriter(api_key)):
        try:
            version = roboflow.Roboflow(api_key=api_key).workspace(where.workspace).project(
                where.project).version(where.version)
            if EXPORT_FORMAT not in version.exports:
                version.export(EXPORT_FORMAT)
            info = rfapi.get_version_export(api_key, where.workspace, where.project, str(where.version),
                                            EXPORT_FORMAT)
        except Exception as error:  # noqa: BLE001 - the client raises many types, all carrying raw bodies
            failure = scrub(f"{type(error).__name__}: {error}", api_key)[:500]
    if failure is not None:  # raised outside the except block: no chained exception carries the key
        raise DataError(f"{label}: Roboflow refused or failed the COCO export of {where} ({failure}); check "
                        f"that {API_KEY_ENV} holds a valid key with access to {where.workspace}/{where.project}")
    link = info.get("export", {}).get("link") if isinstance(info, dict) else None
    if not isinstance(link, str) or not link:
        raise DataError(f"{label}: Roboflow's answer for the COCO export of {where} has no 'export.link'")
    return link


@dataclass(frozen=True)
class RoboflowExport:
    """Download source: each dataset's Roboflow COCO export, converted by ``harness.acquire.importers``."""

    coordinates: Mapping[str, RoboflowCoordinates]
    api_key: str = field(repr=False)
    name: ClassVar[str] = "roboflow"

    @classmethod
    def from_options(cls, specs: Sequence[DatasetSpec], pairs: Iterable[str] = (),
                     config: Path | None = None) -> RoboflowExport:
        """Coordinates for ``specs`` (checked first, without network) and the key from the environment."""
        return cls(resolve_coordinates(specs, pairs, config), api_key_from_env())

    def key(self, spec: DatasetSpec) -> str:
        return f"roboflow:{self.coordinates[spec.name]}"

    def describe(self, spec: DatasetSpec) -> dict[str, str]:
        return {"roboflow": str(self.coordinates[spec.name]), "format": EXPORT_FORMAT}

    def fetch(self, spec: DatasetSpec, dest: Path, *, attempts: int, timeout: float) -> Fetched:
        link = export_link(self.api_key, self.coordinates[spec.name], spec.name)
        failure = None
        with scrubbed_logging(self.api_key):
            try:
                return fetch(link, dest, desc=spec.name, attempts=attempts, timeout=timeout)
            except DataError as error:
                failure = scrub(str(error), self.api_key)
        raise DataError(failure)

    def unpack(self, spec: DatasetSpec, archive: Path, staging: Path) -> None:
        """Extract the export under ``staging`` and convert it into ``spec.folder(staging)``."""
        from harness.acquire.importers import import_dataset

        export = staging / "roboflow-export"
        extract(archive, export, label=f"{spec.name} ({self.coordinates[spec.name]} COCO export)")
        import_dataset(spec, export, fmt=EXPORT_FORMAT, root=staging)  # logs its own summary
        shutil.rmtree(export)
