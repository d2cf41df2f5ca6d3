"""Label spaces: text-embedded labels (paper §3.2), their concatenation (eq. 2) and similarities (eq. 3-4)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from scaledet.errors import ConfigError
from scaledet.files import atomic_torch_save, cache_dir
from scaledet.prompts import IMAGENET_TEMPLATES, prompts_for
from scaledet.text import EncoderSetting, TextEncoder

log = logging.getLogger(__name__)

_LABELS_PER_ENCODER_CALL = 64


@dataclass(frozen=True, eq=False)
class LabelSpace:
    """An ordered list of labels with their text embeddings.

    ``datasets[i]`` is the dataset label ``i`` comes from; ``prompts[i]`` the prompts that were embedded
    for it; ``embeddings`` is ``[n, D]`` float32, rows L2-normalised. ``encoder_setting`` says how to build the
    encoder again (``None``: unknown, e.g. embeddings given directly or a state saved before it was recorded).
    """

    names: tuple[str, ...]
    datasets: tuple[str, ...]
    prompts: tuple[tuple[str, ...], ...]
    encoder_id: str
    embeddings: Tensor = field(repr=False)
    encoder_setting: EncoderSetting | None = None

    def __post_init__(self) -> None:
        n = len(self.names)
        if not (len(self.datasets) == len(self.prompts) == n) or tuple(self.embeddings.shape[:1]) != (n,):
            raise ConfigError(
                f"label space fields disagree: {n} names, {len(self.datasets)} datasets, "
                f"{len(self.prompts)} prompt lists, embeddings {list(self.embeddings.shape)}"
            )

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def fingerprint(self) -> str:
        """Hash of names, prompts and encoder id: equal fingerprints mean equal embeddings."""
        return fingerprint(self.names, self.prompts, self.encoder_id)

    @classmethod
    def from_embeddings(
        cls, names: Sequence[str], embeddings: Tensor, dataset: str = "", encoder_id: str = "given"
    ) -> LabelSpace:
        """A label space from ready embeddings (normalised here), e.g. for tests or external encoders."""
        names = tuple(names)
        return cls(names, (dataset,) * len(names), tuple((n,) for n in names), encoder_id, _unit_rows(embeddings))

    @classmethod
    def concat(cls, spaces: Sequence[LabelSpace]) -> LabelSpace:
        """Eq. 2: the disjoint union, in order; duplicate names stay separate labels."""
        if not spaces:
            raise ConfigError("cannot concatenate an empty list of label spaces")
        encoders = {space.encoder_id for space in spaces}
        if len(encoders) > 1:
            raise ConfigError(f"label spaces come from different text encoders {sorted(encoders)}; use one")
        return cls(
            names=tuple(name for s in spaces for name in s.names),
            datasets=tuple(d for s in spaces for d in s.datasets),
            prompts=tuple(p for s in spaces for p in s.prompts),
            encoder_id=spaces[0].encoder_id,
            embeddings=torch.cat([s.embeddings for s in spaces], dim=0),
            encoder_setting=next((s.encoder_setting for s in spaces if s.encoder_setting), None),
        )

    def indices_of(self, dataset: str) -> list[int]:
        """Positions of one dataset's labels in this (concatenated) space."""
        indices = [i for i, d in enumerate(self.datasets) if d == dataset]
        if not indices:
            raise ConfigError(f"no labels of dataset '{dataset}' here; datasets: {sorted(set(self.datasets))}")
        return indices

    def subset(self, dataset: str) -> LabelSpace:
        """The labels of one dataset, as their own label space."""
        idx = self.indices_of(dataset)
        return LabelSpace(
            tuple(self.names[i] for i in idx),
            tuple(self.datasets[i] for i in idx),
            tuple(self.prompts[i] for i in idx),
            self.encoder_id,
            self.embeddings[idx],
            self.encoder_setting,
        )

    def to_state(self) -> dict:
        """A plain dict (strings, lists, one tensor) that `torch.load(weights_only=True)` can read back."""
        return {
            "names": list(self.names),
            "datasets": list(self.datasets),
            "prompts": [list(p) for p in self.prompts],
            "encoder_id": self.encoder_id,
            "embeddings": self.embeddings.clone(),
            **({"encoder_setting": self.encoder_setting.to_state()} if self.encoder_setting else {}),
        }

    @classmethod
    def from_state(cls, state: dict) -> LabelSpace:
        try:
            return cls(
                tuple(state["names"]),
                tuple(state["datasets"]),
                tuple(tuple(p) for p in state["prompts"]),
                str(state["encoder_id"]),
                state["embeddings"].float(),
                EncoderSetting.from_state(state.get("encoder_setting")),
            )
        except KeyError as error:
            raise ConfigError(f"label space state lacks the field {error}") from error


def fingerprint(names: Sequence[str], prompts: Sequence[Sequence[str]], encoder_id: str) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of names, prompts and encoder id."""
    payload = json.dumps([list(names), [list(p) for p in prompts], encoder_id], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def similarity_matrix(embeddings: Tensor) -> Tensor:
    """Eq. 3-4: cosine of every pair of labels, each row min-max normalised to [0, 1].

    Row ``i`` maps its minimum to 0 and its maximum (the diagonal, ``cos(t_i, t_i) = 1``) to 1. Inputs need
    not be unit vectors. A row whose cosines are all equal (every label points the same way as ``l_i``,
    e.g. n = 1 or duplicated embeddings) has no spread to normalise by: it becomes all ones, the value of
    the diagonal, since every label is then as similar to ``l_i`` as ``l_i`` itself.
    """
    unit = _unit_rows(embeddings)
    cos = unit @ unit.t()
    row_min = cos.min(dim=1, keepdim=True).values
    row_max = cos.max(dim=1, keepdim=True).values
    spread = row_max - row_min
    flat = spread <= 1e-12
    sim = (cos - row_min) / torch.where(flat, torch.ones_like(spread), spread)
    sim = torch.where(flat.expand_as(sim), torch.ones_like(sim), sim)
    return sim.clamp_(0.0, 1.0)


def default_cache_dir() -> Path:
    """``$SCALEDET_CACHE/embeddings``, else the user cache dir (``~/.cache/scaledet/embeddings`` on Linux)."""
    return cache_dir("embeddings")


def encode_label_space(
    names: Sequence[str],
    dataset: str,
    encoder: TextEncoder,
    templates: Sequence[str] = IMAGENET_TEMPLATES,
    cache_dir: Path | str | None = None,
    prompt_names: Sequence[str] | None = None,
    use_cache: bool = True,
) -> LabelSpace:
    """Embed labels as the mean of their prompt embeddings (each prompt L2-normalised first, as CLIP does),
    L2-normalised. ``prompt_names`` replaces the text put into the templates (e.g. GLIP's prompt overrides)
    while the label names stay. Results are cached on disk by fingerprint: the same label space is never
    encoded twice; a changed prompt or encoder misses the cache.
    """
    names = tuple(names)
    texts = tuple(prompt_names) if prompt_names is not None else names
    if len(texts) != len(names):
        raise ConfigError(f"{len(names)} label names but {len(texts)} prompt names")
    prompts = tuple(prompts_for(text, tuple(templates)) for text in texts)
    key = fingerprint(names, prompts, encoder.id)
    cache_file = Path(cache_dir or default_cache_dir()) / f"{key}.pt"
    embeddings = _read_cache(cache_file, names, encoder.id) if use_cache else None
    if embeddings is None:
        embeddings = _encode_prompts(encoder, prompts)
        if use_cache:
            _write_cache(cache_file, names, encoder.id, embeddings)
    return LabelSpace(names, (dataset,) * len(names), prompts, encoder.id, embeddings,
                      getattr(encoder, "setting", None))


def _encode_prompts(encoder: TextEncoder, prompts: tuple[tuple[str, ...], ...]) -> Tensor:
    from tqdm.auto import tqdm

    rows: list[Tensor] = []
    chunks = range(0, len(prompts), _LABELS_PER_ENCODER_CALL)
    for start in tqdm(chunks, desc=f"encoding labels ({encoder.id})", unit="chunk", disable=len(chunks) < 4):
        chunk = prompts[start : start + _LABELS_PER_ENCODER_CALL]
        flat = [p for label_prompts in chunk for p in label_prompts]
        emb = _unit_rows(encoder.encode(flat).float())
        offset = 0
        for label_prompts in chunk:
            rows.append(emb[offset : offset + len(label_prompts)].mean(dim=0))
            offset += len(label_prompts)
    if not rows:
        return torch.zeros(0, 0)
    return _unit_rows(torch.stack(rows))


def _read_cache(path: Path, names: tuple[str, ...], encoder_id: str) -> Tensor | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a truncated or foreign file is a miss, re-encoded and overwritten
        log.warning("ignoring unreadable embedding cache %s (%s)", path, error)
        return None
    if state.get("names") != list(names) or state.get("encoder_id") != encoder_id:
        log.warning("embedding cache %s belongs to another label space; re-encoding", path)
        return None
    log.debug("label embeddings from cache %s", path)
    return state["embeddings"]


def _write_cache(path: Path, names: tuple[str, ...], encoder_id: str, embeddings: Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({"names": list(names), "encoder_id": encoder_id, "embeddings": embeddings}, path)


def _unit_rows(embeddings: Tensor) -> Tensor:
    embeddings = embeddings.float()
    if embeddings.dim() != 2:
        raise ConfigError(f"embeddings must be a 2-d tensor [n, D], got shape {list(embeddings.shape)}")
    norms = embeddings.norm(dim=1)
    if embeddings.shape[0] and bool((norms == 0).any()):
        raise ConfigError(f"embeddings rows {(norms == 0).nonzero().flatten().tolist()} are all zeros")
    return F.normalize(embeddings, dim=1)
