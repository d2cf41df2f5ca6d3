"""Which external model a job runs: ``hf:`` references, the Hugging Face cache read offline, local directories and
their revisions, and the one-line error that says how to fill the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.workloads.hf.models import (
    DOWNLOAD_ENV,
    ModelRef,
    directory_digest,
    hub_cache,
    model_label,
    model_name,
    offline_message,
    resolve,
)
from scaledet.errors import ConfigError, WeightsUnavailableError

REPO = "IDEA-Research/grounding-dino-tiny"
COMMIT = "a2bb814dd30d776dcf7e30523b00659f4f141c71"


def cached_snapshot(cache: Path, repo: str, commit: str) -> Path:
    """The layout huggingface_hub writes: refs/main names the commit, snapshots/<commit>/ holds the files."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "grounding-dino"}))
    return snapshot


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(DOWNLOAD_ENV, raising=False)
    return tmp_path / "hub"


def test_a_cached_repo_resolves_offline_to_its_snapshot_and_commit(cache: Path) -> None:
    snapshot = cached_snapshot(cache, REPO, COMMIT)
    ref = resolve(REPO)
    assert ref == ModelRef(REPO, COMMIT, snapshot)
    assert ref.label == f"{REPO}@a2bb814" and not ref.local
    assert resolve(REPO, COMMIT).path == snapshot  # the planned revision, found again by the job


def test_a_missing_model_is_one_line_naming_the_repo_the_cache_and_the_command(cache: Path) -> None:
    with pytest.raises(WeightsUnavailableError) as error:
        resolve(REPO)
    message = str(error.value)
    assert "\n" not in message
    assert REPO in message and str(cache) in message
    assert message.endswith(f"hf download {REPO}")
    assert DOWNLOAD_ENV in message
    with pytest.raises(WeightsUnavailableError, match=f"hf download {REPO} --revision {COMMIT}$"):
        resolve(REPO, COMMIT)


def test_the_cache_follows_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hub_cache() == tmp_path / "elsewhere"
    assert offline_message("a/b", None, tmp_path).count(str(tmp_path)) == 1


def test_a_local_directory_is_revisioned_by_its_files(tmp_path: Path) -> None:
    folder = tmp_path / "my-owl"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "owlv2"}')
    (folder / "model.safetensors").write_bytes(b"weights v1")
    first = resolve(str(folder))
    assert first.local and first.revision.startswith("sha256:") and len(first.revision) == len("sha256:") + 16
    assert first.label == f"my-owl@{first.revision[7:14]}"
    assert resolve(str(folder), first.revision) == first
    (folder / "model.safetensors").write_bytes(b"weights v2")
    assert directory_digest(folder) != first.revision
    with pytest.raises(WeightsUnavailableError, match="changed since the job was planned"):
        resolve(str(folder), first.revision)


def test_a_folder_without_config_and_bad_references_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no config.json"):
        resolve(str(tmp_path / "empty"))
    assert model_name(f"hf:{tmp_path / 'empty'}") == str((tmp_path / "empty").resolve())
    assert model_name(f"hf:{REPO}") == REPO
    for bad in (REPO, "hf:", "hf:not a repo", "hf:a/b/c"):
        with pytest.raises(ConfigError, match="--model"):
            model_name(bad)


def test_labels_shorten_revisions() -> None:
    assert model_label("google/owlv2-base-patch16", "0123456789abcdef") == "google/owlv2-base-patch16@0123456"
    assert model_label("/models/owl", "sha256:fedcba9876543210") == "owl@fedcba9"
