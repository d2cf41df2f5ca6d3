"""The ScaleDet detector: losses in training, sigmoid top-k detections, vocabulary swap."""

from __future__ import annotations

import pytest
import torch

from scaledet.config import ModelConfig
from scaledet.detector import build_detector, build_softmax_detector
from scaledet.errors import CheckpointError
from scaledet.labels import LabelSpace, similarity_matrix
from scaledet.losses import scaledet_classification_loss

CFG = ModelConfig(backbone="tiny", weights=None, fpn_channels=16, representation_size=32,
                  min_size_test=96, max_size_test=128)


def _space(n: int, dataset: str = "d", dim: int = 8, seed: int = 0) -> LabelSpace:
    g = torch.Generator().manual_seed(seed)
    return LabelSpace.from_embeddings([f"{dataset}{i}" for i in range(n)], torch.randn(n, dim, generator=g), dataset)


def _batch():
    images = [torch.rand(3, 96, 96, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 60.0, 70.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    return images, targets


def test_training_losses_and_label_convention():
    torch.manual_seed(0)
    model = build_detector(CFG, _space(3)).train()
    losses = model(*_batch())
    assert {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"} <= set(losses)
    # classifier loss = hard + 10 * soft, parts reported separately
    assert losses["loss_classifier"].item() == pytest.approx(
        losses["parts/hard"].item() + 10 * losses["parts/soft"].item(), rel=1e-5)
    sum(v for k, v in losses.items() if k.startswith("loss")).backward()
    head = model.roi_heads.box_predictor
    assert head.classifier.projection.weight.grad.abs().sum() > 0 and head.classifier.bias.grad is not None
    assert head.bbox_pred.weight.shape == (4, CFG.representation_size)  # class-agnostic regression


def test_roi_loss_matches_scaledet_loss_on_sampled_regions():
    """Capture what the heads feed the loss: labels are label-space indices, background = -1."""
    torch.manual_seed(1)
    model = build_detector(CFG, _space(3)).train()
    seen = {}
    original = model.roi_heads.select_training_samples

    def spy(proposals, targets):
        out = original(proposals, targets)
        seen["labels"] = torch.cat(out[2]) - 1
        return out

    model.roi_heads.select_training_samples = spy
    cos_seen = {}
    model.roi_heads.box_predictor.classifier.register_forward_hook(lambda m, i, o: cos_seen.setdefault("cos", o))
    losses = model(*_batch())
    labels = seen["labels"]
    assert set(labels.unique().tolist()) <= {-1, 2} and (labels == 2).any()
    clf = model.roi_heads.box_predictor.classifier
    expected = scaledet_classification_loss(cos_seen["cos"], labels, similarity_matrix(model.label_space.embeddings),
                                            tau=clf.tau, soft_weight=10.0, bias=clf.bias)
    assert losses["loss_classifier"].item() == pytest.approx(expected.total.item(), rel=1e-6)


def test_hard_label_ablation_has_no_soft_part():
    torch.manual_seed(0)
    model = build_detector(ModelConfig(**{**CFG.__dict__, "soft_weight": 0.0}), _space(3)).train()
    losses = model(*_batch())
    assert losses["parts/soft"].item() == 0.0
    assert losses["loss_classifier"].item() == pytest.approx(losses["parts/hard"].item())


def test_inference_keeps_top_100_sigmoid_scores_and_swaps_vocabulary():
    torch.manual_seed(0)
    model = build_detector(CFG, _space(3)).eval()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        out = model(_batch()[0])
    assert all(0 < len(o["boxes"]) <= 100 for o in out)
    assert out[0]["labels"].max() < 3 and (out[0]["scores"] <= 1).all()
    model.set_label_space(_space(250, "other", seed=3))
    with torch.no_grad():
        out = model(_batch()[0])
    assert out[0]["labels"].max() >= 3  # labels of the new 250-label vocabulary appear
    assert len(out[0]["boxes"]) == 100  # capped at COCO's maxDets
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())  # weights untouched
    assert "roi_heads.label_embeddings" not in weights  # vocabulary is not part of the weights


def test_one_image_postprocess_hand_computed():
    model = build_detector(ModelConfig(**{**CFG.__dict__, "score_thresh": 0.3}), _space(2))
    heads = model.roi_heads
    heads.detections_per_img = 2
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    scores = torch.tensor([[0.9, 0.2], [0.8, 0.7], [0.1, 0.6]])
    out = heads._one_image(scores, boxes)
    # pairs above 0.3: (r0,l0)=.9, (r1,l0)=.8, (r1,l1)=.7, (r2,l1)=.6; NMS per label removes (r1,l0); top 2 kept
    assert out["scores"].tolist() == pytest.approx([0.9, 0.7])
    assert out["labels"].tolist() == [0, 1]
    assert torch.equal(out["boxes"], boxes[[0, 1]])


def test_label_space_dimension_mismatch_is_clear():
    model = build_detector(CFG, _space(3))
    with pytest.raises(CheckpointError, match="dimension 5, the head expects 8"):
        model.set_label_space(_space(3, dim=5))


def test_stock_softmax_detector_for_comparison():
    torch.manual_seed(0)
    model = build_softmax_detector(CFG, num_classes=3).train()
    images, targets = _batch()
    losses = model(images, [{**t, "labels": t["labels"] + 1} for t in targets])
    assert model.roi_heads.box_predictor.cls_score.out_features == 4
    assert torch.isfinite(sum(losses.values()))


def test_test_time_resize_is_configurable_and_boxes_map_back():
    torch.manual_seed(0)
    model = build_detector(ModelConfig(**{**CFG.__dict__, "min_size_test": 64, "max_size_test": 100}),
                           _space(3)).eval()
    image = torch.rand(3, 100, 300)  # resized to 33 x 100 inside, boxes returned in 100 x 300 pixels
    with torch.no_grad():
        out = model([image])[0]
    assert model.transform.min_size == (64,) and model.transform.max_size == 100
    assert len(out["boxes"]) and out["boxes"][:, 2].max() <= 300 and out["boxes"][:, 3].max() <= 100
    assert out["boxes"][:, 2].max() > 100  # beyond the resized width: mapped back to the original size
