"""Which external model a job runs: ``hf:<repo id or local directory>`` resolved to a folder on this machine and
a revision, without downloading unless allowed.

- A **local directory** (a ``save_pretrained`` folder or a copied snapshot): its revision is ``sha256:`` and the
  first 16 hex digits of the SHA-256 of its files (names and contents), so changed weights are a new revision.
- A **repo id** (``owner/name``): looked up in the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``,
  else ``~/.cache/huggingface/hub``); its revision is the commit hash of the cached snapshot. A compute job never
  downloads unless ``$HARNESS_HF_DOWNLOAD=1``: on a cluster, fill the cache on a login node with the command the
  error names, then submit.

``harness run --model`` resolves the model when it plans, so the revision is part of every job id (two revisions
are two cells); the job resolves it again and fails if the weights changed since.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from scaledet.errors import ConfigError, WeightsUnavailableError

log = logging.getLogger(__name__)

PREFIX = "hf:"
DOWNLOAD_ENV = "HARNESS_HF_DOWNLOAD"  # "1": a job may download a model missing from the cache
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
LOCAL_REVISION = "sha256:"


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: ``name`` (repo id, or the local directory's absolute path), ``revision`` and the
    folder holding its ``config.json`` and weights."""

    name: str
    revision: str
    path: Path

    @property
    def local(self) -> bool:
        return self.revision.startswith(LOCAL_REVISION)

    @property
    def label(self) -> str:
        return model_label(self.name, self.revision)


def model_label(name: str, revision: str) -> str:
    """``owner/name@abc1234``; a local directory: its folder name and the start of its digest."""
    local = revision.startswith(LOCAL_REVISION)
    return f"{Path(name).name if local else name}@{revision.removeprefix(LOCAL_REVISION)[:7]}"


def model_name(text: str) -> str:
    """The repo id or absolute directory of ``hf:<repo id or dir>``; a ``ConfigError`` for anything else."""
    if not text.startswith(PREFIX) or not text[len(PREFIX):].strip():
        raise ConfigError(f"--model {text!r}: expected hf:<repo id or local directory>, e.g. "
                          "hf:IDEA-Research/grounding-dino-tiny or hf:./my-owlv2")
    name = text[len(PREFIX):].strip()
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if not REPO_ID.match(name):
        raise ConfigError(f"--model {text!r}: {name!r} is neither a local directory nor a Hugging Face repo id "
                          "(owner/name)")
    return name


def hub_cache() -> Path:
    """The Hugging Face hub cache this process reads (the environment as it is now)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME")
    return Path(home) / "hub" if home else Path.home() / ".cache" / "huggingface" / "hub"


def downloads_allowed() -> bool:
    return os.environ.get(DOWNLOAD_ENV, "") == "1"


def directory_digest(path: Path) -> str:
    """``sha256:`` + 16 hex digits over the relative names and contents of every file under ``path``."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return LOCAL_REVISION + digest.hexdigest()[:16]


def offline_message(repo_id: str, revision: str | None, cache: Path) -> str:
    """The one-line error for a model that is not in the cache (repo, cache, the command that fills it)."""
    at = f" --revision {revision}" if revision else ""
    return (f"model {repo_id}{f'@{revision}' if revision else ''} is not in the Hugging Face cache {cache}, and jobs "
            f"do not download ({DOWNLOAD_ENV} is not 1); fill the cache on a machine with internet (a login node, "
            f"same HF_HOME): hf download {repo_id}{at}")


def resolve(name: str, revision: str | None = None, *, allow_download: bool | None = None) -> ModelRef:
    """The model ``name`` (see :func:`model_name`) at ``revision`` (None: the cached ``main``); a local directory's
    revision must equal ``revision`` when one is given. ``WeightsUnavailableError`` with one line naming the repo,
    the cache and the command when the model is not on this machine."""
    path = Path(name)
    if path.is_absolute() or path.is_dir():
        return _local(path, revision)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    allow = downloads_allowed() if allow_download is None else allow_download
    cache = hub_cache()
    try:
        folder = snapshot_download(name, revision=revision, cache_dir=cache, local_files_only=not allow)
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, OSError) as error:
        if allow:
            raise WeightsUnavailableError(f"model {name}: download into {cache} failed: {error}") from None
        raise WeightsUnavailableError(offline_message(name, revision, cache)) from None
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise WeightsUnavailableError(f"model {name}: the cached snapshot {folder} has no config.json (an incomplete "
                                      f"download?); fill it again: hf download {name}")
    return ModelRef(name, folder.name, folder)


def _local(path: Path, revision: str | None) -> ModelRef:
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise WeightsUnavailableError(f"model directory {path} does not exist")
    if not (path / "config.json").is_file():
        raise ConfigError(f"model directory {path} has no config.json: expected a folder written by "
                          "save_pretrained (model and processor) or a copied Hugging Face snapshot")
    found = directory_digest(path)
    if revision is not None and revision != found:
        raise WeightsUnavailableError(f"model directory {path} changed since the job was planned: its files hash to "
                                      f"{found}, the job was planned with {revision}; plan again (harness run)")
    return ModelRef(str(path), found, path)
