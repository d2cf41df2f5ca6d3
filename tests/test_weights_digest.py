"""`weights_digest`: what DDP ranks compare at every checkpoint (equal exactly when the weights are)."""

from __future__ import annotations

import hashlib

import torch

from scaledet.checkpoints import weights_digest


def _weights() -> dict[str, torch.Tensor]:
    return {"b.bias": torch.tensor([0.5, -1.0]), "a.weight": torch.arange(6, dtype=torch.float32).view(2, 3),
            "n.num_batches": torch.tensor(3), "e.empty": torch.zeros(0)}


def test_the_digest_is_a_sha256_of_names_dtypes_shapes_and_bytes_in_name_order():
    weights = _weights()
    expected = hashlib.sha256()
    for name in sorted(weights):
        tensor = weights[name]
        expected.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        expected.update(tensor.numpy().tobytes())
    assert weights_digest(weights) == expected.hexdigest()
    assert weights_digest(dict(reversed(list(weights.items())))) == expected.hexdigest()  # order of the dict


def test_any_difference_in_the_weights_changes_the_digest():
    reference = weights_digest(_weights())
    changed = [
        {**_weights(), "a.weight": _weights()["a.weight"].clone().index_put_((torch.tensor(1), torch.tensor(2)),
                                                                            torch.tensor(5.0001))},
        {**_weights(), "a.weight": _weights()["a.weight"].double()},  # same values, another dtype
        {**_weights(), "a.weight": _weights()["a.weight"].view(3, 2)},  # same bytes, another shape
        {k.replace("b.bias", "c.bias"): v for k, v in _weights().items()},  # another name
        {k: v for k, v in _weights().items() if k != "e.empty"},  # a tensor fewer, even an empty one
    ]
    assert len({reference, *(weights_digest(w) for w in changed)}) == len(changed) + 1


def test_a_non_contiguous_or_bf16_tensor_is_digested_by_its_values():
    values = torch.arange(12, dtype=torch.float32).view(3, 4)
    assert weights_digest({"w": values.t()}) == weights_digest({"w": values.t().contiguous()})
    assert weights_digest({"w": values.bfloat16()}) != weights_digest({"w": values})
    assert len(weights_digest({"w": values.bfloat16()})) == 64
