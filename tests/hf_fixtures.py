"""Tiny randomly initialised models of every external adapter family, saved once per session to local directories
(real ``transformers`` classes and processors, tokenizers from a small local vocabulary; no download)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hf_tiny_grounding_dino import save_tiny_grounding_dino, save_tiny_mm_grounding_dino
from hf_tiny_omdet import save_tiny_omdet_turbo
from hf_tiny_owl import save_tiny_owlv2, save_tiny_owlvit

# the demo's class names (and GLIP's prompt words for them) are single tokens of the tiny vocabularies
DEMO_WORDS = ("raccoon", "cow", "chanterelle", "fish", "jellyfish", "penguin", "puffin", "shark", "starfish",
              "stingray", "package")  # fmt: skip
SAVERS = {"owlvit": save_tiny_owlvit, "owlv2": save_tiny_owlv2, "grounding-dino": save_tiny_grounding_dino,
          "mm-grounding-dino": save_tiny_mm_grounding_dino, "omdet-turbo": save_tiny_omdet_turbo}  # fmt: skip


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Family name -> a folder holding its tiny model and processor (``save_pretrained``)."""
    root = tmp_path_factory.mktemp("hf-models")
    return {name: save(root / name, DEMO_WORDS) for name, save in SAVERS.items()}


def cache_as(folder: Path, cache: Path, repo: str, commit: str) -> Path:
    """``folder``'s files as the Hugging Face cache holds a downloaded ``repo`` at ``commit`` (the layout
    huggingface_hub writes: ``refs/main`` names the commit, ``snapshots/<commit>/`` holds the files)."""
    import shutil

    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    snapshot = root / "snapshots" / commit
    shutil.copytree(folder, snapshot)
    return snapshot
