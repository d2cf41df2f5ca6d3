"""Small tokenizers built from a local vocabulary, for the tiny randomly initialised ``transformers`` detectors of
the external-model tests (no download): a byte-level BPE tokenizer in CLIP's format (OWL-ViT, OWLv2, OmDet-Turbo)
and a WordPiece tokenizer in BERT's format (Grounding DINO, MM-Grounding-DINO).

Each word of ``words`` is one token; anything else is spelled out character by character, as the real tokenizers
do with rare words.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from transformers.convert_slow_tokenizer import bytes_to_unicode

CLIP_SPECIAL = ("<|startoftext|>", "<|endoftext|>")
BERT_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _merges(word: str) -> list[tuple[str, str]]:
    """The BPE merges that build ``word</w>`` left to right from its characters."""
    chars = list(word[:-1]) + [word[-1] + "</w>"]
    merges, built = [], chars[0]
    for char in chars[1:]:
        merges.append((built, char))
        built += char
    return merges


def save_clip_tokenizer(dest: Path, words: Iterable[str]) -> Path:
    """``vocab.json`` and ``merges.txt`` of a CLIP-format BPE tokenizer in ``dest`` (every byte, every byte at a
    word's end, each of ``words`` lower-cased, and the two special tokens); returns ``dest``."""
    import transformers

    dest.mkdir(parents=True, exist_ok=True)
    symbols = list(bytes_to_unicode().values())
    vocab: list[str] = [*symbols, *(s + "</w>" for s in symbols)]
    merges: list[tuple[str, str]] = []
    for word in dict.fromkeys(w.lower() for w in words):
        for left, right in _merges(word):
            if (left, right) not in merges:
                merges.append((left, right))
            if left + right not in vocab:
                vocab.append(left + right)
    vocab += list(CLIP_SPECIAL)
    (dest / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (dest / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    transformers.CLIPTokenizer(str(dest / "vocab.json"), str(dest / "merges.txt"), pad_token="!").save_pretrained(dest)
    return dest


def save_bert_tokenizer(dest: Path, words: Iterable[str]) -> Path:
    """A BERT-format WordPiece tokenizer in ``dest``: the special tokens, ``.``, every lower-case letter and digit
    (and their ``##`` continuations), and each of ``words`` lower-cased; returns ``dest``."""
    import transformers

    dest.mkdir(parents=True, exist_ok=True)
    chars = [*"abcdefghijklmnopqrstuvwxyz0123456789", ".", ",", "-", "_", "(", ")", "'", "/"]
    vocab = [*BERT_SPECIAL, *chars, *(f"##{c}" for c in chars)]
    vocab += [w for w in dict.fromkeys(w.lower() for w in words) if w not in vocab]
    (dest / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    transformers.BertTokenizer(str(dest / "vocab.txt")).save_pretrained(dest)
    return dest
