"""Tiny randomly initialised Grounding DINO and MM-Grounding-DINO detectors with their processors, saved with
``save_pretrained`` for the external-model tests (no download: the Swin backbone and the BERT text encoder are
built from their configs, the tokenizer from a local vocabulary).

The real checkpoints' phrase masks are keyed on the BERT vocabulary's ids of ``[CLS]``, ``[SEP]``, ``.`` and ``?``
(hard-coded in ``transformers``); the tiny vocabulary has other ids, so in the tiny models every text token
attends only to itself. That changes what the text encoder computes, not how the adapter reads the outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from hf_tiny_tokenizers import save_bert_tokenizer

# the deepest feature level has stride 64: the shorter side must give it more than one cell (GroupNorm)
IMAGE_SIZE = {"shortest_edge": 128, "longest_edge": 192}


def _config_kwargs(vocab_size: int, max_text_len: int) -> dict:
    from transformers import BertConfig, SwinConfig

    backbone = SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4, image_size=64,
                          out_indices=[2, 3, 4])
    text = BertConfig(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=max_text_len)
    return {"backbone_config": backbone, "text_config": text, "d_model": 32, "encoder_layers": 1,
            "decoder_layers": 2,  # one layer leaves nothing to tie the first box head to
            "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
            "encoder_n_points": 2, "decoder_n_points": 2, "num_queries": 20, "max_text_len": max_text_len,
            "dropout": 0.0, "fusion_droppath": 0.0}


def _save(dest: Path, words: Sequence[str], max_text_len: int, mm: bool) -> Path:
    import transformers

    dest.mkdir(parents=True, exist_ok=True)
    save_bert_tokenizer(dest, words)
    tokenizer = transformers.BertTokenizer.from_pretrained(str(dest), local_files_only=True)
    image_processor = transformers.GroundingDinoImageProcessor(size=dict(IMAGE_SIZE))
    processor = transformers.GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    prefix = "MMGroundingDino" if mm else "GroundingDino"
    config = getattr(transformers, f"{prefix}Config")(**_config_kwargs(len(tokenizer), max_text_len))
    torch.manual_seed(0)
    model = getattr(transformers, f"{prefix}ForObjectDetection")(config).eval()
    model.save_pretrained(dest)
    processor.save_pretrained(dest)
    return dest


def save_tiny_grounding_dino(dest: Path, words: Sequence[str], max_text_len: int = 256) -> Path:
    """A tiny ``GroundingDinoForObjectDetection`` and its ``GroundingDinoProcessor`` (each of ``words`` one token)
    saved in ``dest``; returns ``dest``."""
    return _save(dest, words, max_text_len, mm=False)


def save_tiny_mm_grounding_dino(dest: Path, words: Sequence[str], max_text_len: int = 256) -> Path:
    """A tiny ``MMGroundingDinoForObjectDetection`` and its ``GroundingDinoProcessor`` (each of ``words`` one
    token) saved in ``dest``; returns ``dest``."""
    return _save(dest, words, max_text_len, mm=True)
