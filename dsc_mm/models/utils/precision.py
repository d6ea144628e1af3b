"""float32 islands inside an autocast region, for the numerics that bf16/fp16 would break.

``x.float() @ y.float()`` inside ``torch.autocast`` still runs the matmul in bf16/fp16: autocast
casts the inputs of every listed op, whatever their dtype. Clustering, Sinkhorn and each
log-sum-exp over a pool or a queue therefore run in :func:`float32_region`, on inputs passed
through :func:`at_least_float32`.
"""
import contextlib
from typing import Iterator

import torch


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32, or unchanged when it is float32/float64 already.

    float64 stays float64, so the float64 reduction tests against mmpretrain keep their
    precision.
    """
    if tensor.dtype in (torch.float32, torch.float64):
        return tensor
    return tensor.float()


@contextlib.contextmanager
def float32_region(device: torch.device) -> Iterator[None]:
    """Leave any autocast region of ``device``'s type for the enclosed ops."""
    with torch.autocast(device_type=device.type, enabled=False):
        yield
