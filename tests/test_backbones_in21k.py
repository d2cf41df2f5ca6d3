"""ImageNet-21k backbones (model.weights=in21k): timm's Swin converted to torchvision's computes the same
features; the ResNet-50 file comes through its real download path (a local HTTP server standing in for MIIL's)
into torch hub's cache, the Swin file from a Hugging Face cache; offline and absent, the error names the file, the
cache and the command that fills it. Weights are random (the real files are not to be had offline), the
architectures real."""

from __future__ import annotations

import functools
import http.server
import socket
import threading

import pytest
import timm
import torch
import torchvision
from huggingface_hub import constants
from safetensors.torch import save_file

from scaledet import pretrained
from scaledet.backbones import build_backbone, input_normalization
from scaledet.config import ModelConfig
from scaledet.detector import build_detector
from scaledet.errors import ConfigError, WeightsUnavailableError
from scaledet.labels import LabelSpace


def _timm_swin_tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("swin_tiny_patch4_window7_224", pretrained=False).eval()


def test_timm_swin_converted_computes_the_same_features():
    source = _timm_swin_tiny()
    converted = pretrained.timm_swin_to_torchvision(source.state_dict())
    assert not any(k.startswith("head.") for k in converted)
    target = torchvision.models.swin_t().eval()
    result = target.load_state_dict(converted, strict=False)
    assert result.unexpected_keys == []
    assert {k.rsplit(".", 1)[-1] for k in result.missing_keys} <= {"relative_position_index", "weight", "bias"}
    assert all("relative_position_index" in k or k.startswith("head.") for k in result.missing_keys)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = target.norm(target.features(x))
        theirs = source.forward_features(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.fixture
def miil_server(tmp_path, monkeypatch):
    """A local server holding a ResNet-50 21k file in MIIL's format ({'state_dict': ...}, an 11,221-way fc), the
    entry's URL pointed at it, torch hub's cache under tmp."""
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=11221)
    served = tmp_path / "served"
    served.mkdir()
    torch.save({"state_dict": model.state_dict()}, served / "resnet50_miil_21k.pth")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    entry = pretrained.IN21K_WEIGHTS["r50"]
    url = f"http://127.0.0.1:{server.server_address[1]}/resnet50_miil_21k.pth"
    monkeypatch.setitem(pretrained.IN21K_WEIGHTS, "r50", pretrained.In21kWeights(
        "r50", "url", url, entry.file, entry.mean, entry.std))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    yield model, server
    server.shutdown()


def test_r50_in21k_downloads_into_the_cache_then_reads_it_offline(miil_server, tmp_path):
    model, server = miil_server
    body = build_backbone("r50", "in21k").body
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet50_miil_21k.pth"
    assert cached.is_file()
    torch.testing.assert_close(body.stages[2][2].conv3.weight, model.layer4[2].conv3.weight)
    server.shutdown()
    server.server_close()  # offline now: the cache serves
    again = build_backbone("r50", "in21k").body
    torch.testing.assert_close(again.stem[0].weight, model.conv1.weight)
    cached.unlink()
    with pytest.raises(WeightsUnavailableError) as error:
        build_backbone("r50", "in21k")
    message = str(error.value)
    assert "resnet50_miil_21k.pth" in message and str(cached) in message
    assert f"curl -L --create-dirs -o {cached} http://127.0.0.1:" in message
    assert not any(cached.parent.iterdir())  # no half file left behind


def test_a_server_that_stops_answering_fails_the_download_instead_of_hanging(tmp_path, monkeypatch):
    listener = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/resnet50_miil_21k.pth"
    entry = pretrained.IN21K_WEIGHTS["r50"]
    monkeypatch.setitem(pretrained.IN21K_WEIGHTS, "r50", pretrained.In21kWeights(
        "r50", "url", url, entry.file, entry.mean, entry.std))
    monkeypatch.setattr(pretrained, "DOWNLOAD_TIMEOUT_S", 0.5)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with listener, pytest.raises(WeightsUnavailableError, match="could not be downloaded"):
        build_backbone("r50", "in21k")


def test_swin_in21k_reads_the_hugging_face_cache_and_names_the_command_when_absent(tmp_path, monkeypatch):
    source = _timm_swin_tiny()
    repo = pretrained.IN21K_WEIGHTS["swin-t"].location
    cache = tmp_path / "hf"
    snapshot = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(snapshot / "model.safetensors"))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    features = build_backbone("swin-t", "in21k").body.features
    torch.testing.assert_close(features[1][0].attn.qkv.weight, source.layers[0].blocks[0].attn.qkv.weight)
    torch.testing.assert_close(features[4].reduction.weight, source.layers[2].downsample.reduction.weight)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(WeightsUnavailableError, match=f"hf download {repo} model.safetensors"):
        build_backbone("swin-t", "in21k")


def test_in21k_sets_the_input_normalisation_and_exists_only_where_weights_do():
    assert (input_normalization("r50", "in21k").mean, input_normalization("r50", "in21k").std) == (
        (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # MIIL's ResNet-50 takes [0, 1] inputs
    assert input_normalization("swin-b", "in21k").mean == input_normalization("swin-b").mean
    space = LabelSpace.from_embeddings(["a", "b"], torch.randn(2, 8))
    detector = build_detector(ModelConfig(backbone="r50", weights="in21k", fpn_channels=32,
                                          representation_size=32), space, load_weights=False)
    assert detector.transform.image_mean == [0.0, 0.0, 0.0] and detector.transform.image_std == [1.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="no ImageNet-21k weights for backbone 'effnet-lite0'"):
        build_backbone("effnet-lite0", "in21k")
