"""Tiny randomly initialised OWL-ViT and OWLv2 detectors saved as ``save_pretrained`` folders (no download), for the
external-model tests: 2-layer 32-wide towers, 64-pixel images in 16-pixel patches (a 4x4 grid of boxes), the real
models' 16-token text limit, and a CLIP tokenizer whose vocabulary holds ``words``. Seeded: reruns are identical.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from hf_tiny_tokenizers import save_clip_tokenizer

IMAGE_SIZE = 64
TEXT_LIMIT = 16  # the real OWL checkpoints' max_position_embeddings and tokenizer model_max_length


def _calm_heads(model: torch.nn.Module) -> None:
    """The box, class (and objectness) heads' linear layers re-drawn at std 0.02 with zero bias: their default
    draw (std 1) saturates every box and score sigmoid, which makes boxes degenerate (0 or 1 wide)."""
    heads = [model.box_head, model.class_head, getattr(model, "objectness_head", None)]
    with torch.no_grad():
        for layer in (m for head in heads if head is not None for m in head.modules()):
            if isinstance(layer, torch.nn.Linear):
                layer.weight.normal_(0.0, 0.02)
                layer.bias.zero_()


def _save(dest: Path, words: Sequence[str], version: str) -> Path:
    import transformers

    v2 = version == "owlv2"
    prefix = "Owlv2" if v2 else "OwlViT"
    dest.mkdir(parents=True, exist_ok=True)
    save_clip_tokenizer(dest / "_tokenizer", words)
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(dest / "_tokenizer"), local_files_only=True)
    tokenizer.model_max_length = TEXT_LIMIT
    shutil.rmtree(dest / "_tokenizer")
    special = tokenizer.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    tower = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    text = {**tower, "vocab_size": len(tokenizer), "max_position_embeddings": TEXT_LIMIT, "pad_token_id": 0,
            "bos_token_id": special[0], "eos_token_id": special[1]}
    vision = {**tower, "image_size": IMAGE_SIZE, "patch_size": 16}
    config = getattr(transformers, f"{prefix}Config")(text_config=text, vision_config=vision, projection_dim=32)
    torch.manual_seed(0)
    model = getattr(transformers, f"{prefix}ForObjectDetection")(config).eval()
    _calm_heads(model)
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    if v2:
        image_processor = transformers.Owlv2ImageProcessor(size=size)
    else:
        image_processor = transformers.OwlViTImageProcessor(size=size, crop_size=size)
    processor = getattr(transformers, f"{prefix}Processor")(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(dest)
    processor.save_pretrained(dest)
    return dest


def save_tiny_owlvit(dest: Path, words: Sequence[str]) -> Path:
    """A tiny random ``OwlViTForObjectDetection`` and its ``OwlViTProcessor`` saved in ``dest``; returns ``dest``."""
    return _save(dest, words, "owlvit")


def save_tiny_owlv2(dest: Path, words: Sequence[str]) -> Path:
    """A tiny random ``Owlv2ForObjectDetection`` and its ``Owlv2Processor`` saved in ``dest``; returns ``dest``."""
    return _save(dest, words, "owlv2")
