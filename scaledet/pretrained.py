"""ImageNet-21k backbone weights (``model.weights: in21k``): the paper initialises its backbones from
ImageNet-21k (§4.1). Which weights, where they are fetched from and cached, and how they become the state dict of
our (torchvision) backbones.

==========  ==========================================================  =========================================
backbone    weights                                                     why these
==========  ==========================================================  =========================================
``r50``     MIIL ImageNet-21K-P ResNet-50 (Ridnik et al., NeurIPS 2021  the R50-21k that Detic and CenterNet2's
            datasets track), ``resnet50_miil_21k.pth`` from MIIL's      LVIS models (the recipe ScaleDet builds
            model zoo; a plain ResNet-50, inputs in [0, 1] without      on) start from; torchvision has no 21k
            mean/std normalisation (MIIL's, as timm configures it)      ResNet-50, timm's BiT is another network
``swin-t``  timm ``swin_tiny_patch4_window7_224.ms_in22k`` (Hugging     Microsoft's Swin-T ImageNet-22k release
            Face ``timm/...``, ``model.safetensors``)                   as timm hosts it, converted to
                                                                        torchvision's Swin layout here
``swin-b``  timm ``swin_base_patch4_window7_224.ms_in22k``              Swin-B 22k, the weights Detic's Swin-B
                                                                        starts from (``swin_base_..._22k.pth``)
==========  ==========================================================  =========================================

Weights come from a local cache (torch hub's for the ResNet, Hugging Face's for the Swins) or are downloaded
into it; offline and absent, :class:`~scaledet.errors.WeightsUnavailableError` names the file, the cache looked
in and the one command that fills it on a machine with internet. The 21k classifier heads are dropped.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from scaledet.errors import ConfigError, WeightsUnavailableError

log = logging.getLogger(__name__)

IN21K = "in21k"  # the value of model.weights that selects these weights
DOWNLOAD_TIMEOUT_S = 60.0  # a download whose server stops answering this long fails (offline clusters stall)


@dataclass(frozen=True)
class In21kWeights:
    """Where one backbone's ImageNet-21k weights come from, and the input normalisation they expect."""

    backbone: str
    source: str  # "url" (torch hub cache) or "hf" (Hugging Face hub cache)
    location: str  # the URL, or the Hugging Face repo id
    file: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
IN21K_WEIGHTS: dict[str, In21kWeights] = {
    "r50": In21kWeights("r50", "url", "https://miil-public-eu.oss-eu-central-1.aliyuncs.com/model-zoo/"
                        "ImageNet_21K_P/models/resnet50_miil_21k.pth", "resnet50_miil_21k.pth",
                        (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "swin-t": In21kWeights("swin-t", "hf", "timm/swin_tiny_patch4_window7_224.ms_in22k", "model.safetensors",
                           *_IMAGENET),
    "swin-b": In21kWeights("swin-b", "hf", "timm/swin_base_patch4_window7_224.ms_in22k", "model.safetensors",
                           *_IMAGENET),
}


def in21k_weights(backbone: str) -> In21kWeights:
    """The ImageNet-21k weights of ``backbone``; a ConfigError for a backbone without any."""
    if backbone not in IN21K_WEIGHTS:
        raise ConfigError(f"model.weights={IN21K}: no ImageNet-21k weights for backbone '{backbone}'; they exist for "
                          f"{', '.join(IN21K_WEIGHTS)} (model.weights=default loads ImageNet-1k)")
    return IN21K_WEIGHTS[backbone]


def cache_path(weights: In21kWeights) -> Path:
    """Where the file is (or would be) cached."""
    if weights.source == "url":
        return Path(torch.hub.get_dir()) / "checkpoints" / weights.file
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{weights.location.replace('/', '--')}"


def fill_command(weights: In21kWeights) -> str:
    """The one command that puts the file into the cache on a machine with internet."""
    if weights.source == "url":
        return f"curl -L --create-dirs -o {cache_path(weights)} {weights.location}"
    return f"hf download {weights.location} {weights.file}"


def load_in21k_state_dict(backbone: str) -> dict[str, Tensor]:
    """The ImageNet-21k state dict of ``backbone`` in our (torchvision) layout, classifier head dropped."""
    weights = in21k_weights(backbone)
    path = _fetch(weights)
    if weights.source == "url":
        state = _read_torch_file(path, weights)
        return {k: v for k, v in state.items() if not k.startswith("fc.")}
    from safetensors.torch import load_file

    return timm_swin_to_torchvision(load_file(str(path)))


def _fetch(weights: In21kWeights) -> Path:
    unavailable = (f"ImageNet-21k weights of backbone '{weights.backbone}' ({weights.location}, {weights.file}) are "
                   f"not in the cache {cache_path(weights)} and could not be downloaded")
    how = (f"; on a machine with internet run `{fill_command(weights)}` (then copy the cache folder here), or pass "
           f"a local file (model.weights=/path/to/file), or model.weights=default for ImageNet-1k")
    if weights.source == "url":
        path = cache_path(weights)
        if path.is_file():
            return path
        try:
            _download(weights.location, path)
        except OSError as error:  # offline: URLError, refused or stalled sockets (timeouts), HTTP errors
            raise WeightsUnavailableError(f"{unavailable} ({type(error).__name__}){how}") from error
        return path
    from huggingface_hub import constants, hf_hub_download

    try:  # the cache first: no network round trips (and retries) when the file is there
        return Path(hf_hub_download(weights.location, weights.file, local_files_only=True))
    except Exception as error:  # LocalEntryNotFoundError and its kin
        if constants.HF_HUB_OFFLINE:
            raise WeightsUnavailableError(f"{unavailable} (HF_HUB_OFFLINE is set){how}") from error
    try:
        return Path(hf_hub_download(weights.location, weights.file))
    except Exception as error:  # connection errors, missing repo: many types
        raise WeightsUnavailableError(f"{unavailable} ({type(error).__name__}){how}") from error


def _download(url: str, path: Path) -> None:
    """``url`` into ``path`` with a progress bar, through a temporary file renamed on completion (a crash leaves no
    half file in the cache); a server that stops answering for DOWNLOAD_TIMEOUT_S seconds raises instead of hanging."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(partial, "wb") as out, tqdm(
                total=int(response.headers.get("Content-Length") or 0) or None, unit="B", unit_scale=True,
                desc=path.name) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    log.info("downloaded %s into %s", url, path)


def _read_torch_file(path: Path, weights: In21kWeights) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a pickle with objects other than tensors, a truncated file
        raise WeightsUnavailableError(
            f"cannot read {path} as plain tensors (weights_only=True: {str(error).splitlines()[0][:160]}); if the "
            f"file is intact and from {weights.location}, save its 'state_dict' alone with torch.save and pass that "
            "file as model.weights") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsUnavailableError(f"{path} does not hold a state dict of tensors")
    return state


_SWIN_BLOCK = re.compile(r"layers\.(\d+)\.blocks\.(\d+)\.(.+)")
_SWIN_MERGE = re.compile(r"layers\.(\d+)\.downsample\.(.+)")


def timm_swin_to_torchvision(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A timm Swin state dict (timm >= 0.9 layout: patch merging at the start of stages 1-3) as torchvision's
    ``swin_t``/``swin_b`` name their parameters; the classifier head is dropped. Both merge the 2x2 patches in the
    same channel order, so tensors move unchanged (a test checks the two networks' features agree)."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith("head."):
            continue
        if key.startswith("patch_embed.proj."):
            out["features.0.0." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("patch_embed.norm."):
            out["features.0.2." + key.rsplit(".", 1)[1]] = value
        elif block := _SWIN_BLOCK.fullmatch(key):
            stage, index, rest = int(block[1]), block[2], block[3]
            rest = rest.replace("mlp.fc1.", "mlp.0.").replace("mlp.fc2.", "mlp.3.")
            out[f"features.{2 * stage + 1}.{index}.{rest}"] = value
        elif merge := _SWIN_MERGE.fullmatch(key):
            out[f"features.{2 * int(merge[1])}.{merge[2]}"] = value
        elif key.startswith("norm."):
            out[key] = value
        else:
            raise WeightsUnavailableError(f"unexpected key {key!r} in a timm Swin state dict")
    return out
