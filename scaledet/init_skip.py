"""Building a model whose every weight a checkpoint overwrites next, without paying for its random init.

Every ``torch.nn`` layer fills its parameters through ``torch.nn.init`` (``Linear`` through ``kaiming_uniform_``,
torchvision's Swin through ``trunc_normal_``, our heads through ``normal_``); for a Swin-B detector those fills take
seconds on a CPU, wasted when ``load_state_dict`` replaces them a moment later. Inside :func:`init_skipped` the
fills leave their tensor as allocated. Use it only where a strict load of every parameter and persistent buffer
follows (``scaledet.checkpoints.load_model_weights`` refuses a checkpoint that misses one), and where nothing
after the build depends on the random numbers the init would have drawn: the global RNG is left untouched.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
from torch.nn import init

# the fills of torch.nn.init that modules call in their constructors and reset_parameters
FILLS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
         "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")
_LOCK = threading.Lock()


def _left_as_allocated(tensor: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
    return tensor


@contextlib.contextmanager
def init_skipped() -> Iterator[None]:
    """Within the block, ``torch.nn.init``'s fills return their tensor unchanged (its values are whatever the
    allocation held); on leaving, the real functions are back, also after an error."""
    with _LOCK:
        saved = {name: getattr(init, name) for name in FILLS}
        try:
            for name in FILLS:
                setattr(init, name, _left_as_allocated)
            yield
        finally:
            for name, fill in saved.items():
                setattr(init, name, fill)
