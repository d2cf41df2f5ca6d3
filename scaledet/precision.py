"""Mixed precision modes: ``train.amp`` (and ``data.test_amp`` for prediction) name one of :data:`AMP_MODES`.

- ``"bf16"``: autocast to bfloat16, no gradient scaler (bfloat16 has float32's exponent range: gradients do not
  underflow). The safer choice on GPUs that have it (Ampere and newer).
- ``"fp16"``: autocast to float16 with a ``GradScaler`` (the paper's detectron2 AMP; ``train.amp: true`` of older
  configs means this).
- ``"off"``: float32 throughout.

AMP is CUDA-only here: on any other device every mode runs in float32 (no autocast, no scaler), so a CPU run gives
the same numbers whatever the mode. ``"bf16"`` on a CUDA device without bfloat16 support is a ``ConfigError``
(no silent fall-back: a run's numerics are what its record says).
"""

from __future__ import annotations

import contextlib

import torch

from scaledet.errors import ConfigError

AMP_MODES = ("bf16", "fp16", "off")
LEGACY_AMP = {True: "fp16", False: "off"}  # ``amp: true/false`` of configs written before the modes existed


def check_mode(mode: object, key: str = "train.amp") -> str:
    """``mode`` if it is one of :data:`AMP_MODES`, else a ``ConfigError`` naming ``key`` and the valid modes."""
    if not isinstance(mode, str) or mode not in AMP_MODES:
        raise ConfigError(f"{key} is {mode!r}; expected one of {', '.join(AMP_MODES)}")
    return mode


def amp_dtype(mode: str, device: torch.device, key: str = "train.amp") -> torch.dtype | None:
    """The autocast dtype of ``mode`` on ``device``: ``None`` (float32) when ``mode`` is ``"off"`` or the device
    is not CUDA. ``ConfigError`` naming ``key`` for an unknown mode, or for ``"bf16"`` on a CUDA device without
    bfloat16 support."""
    check_mode(mode, key)
    device = torch.device(device)
    if mode == "off" or device.type != "cuda":
        return None
    if mode == "bf16":
        if not torch.cuda.is_bf16_supported(including_emulation=False):
            raise ConfigError(f"{key} is 'bf16' but {device} ({torch.cuda.get_device_name(device)}) has no "
                              "bfloat16 support; use 'fp16' (with a gradient scaler) or 'off'")
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, mode: str, key: str = "train.amp") -> contextlib.AbstractContextManager:
    """``torch.autocast`` to :func:`amp_dtype`'s dtype, or a null context when that is ``None``."""
    dtype = amp_dtype(mode, device, key)
    return torch.autocast(torch.device(device).type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def needs_scaler(mode: str, device: torch.device, key: str = "train.amp") -> bool:
    """Whether training in ``mode`` on ``device`` needs a ``GradScaler``: only float16 on CUDA."""
    return amp_dtype(mode, device, key) == torch.float16
