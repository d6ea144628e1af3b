"""Sinkhorn-Knopp equipartition of a pixel pool over prototypes (DSC-PM targets).

mmpretrain's ``models.losses.swav_loss.distributed_sinkhorn`` is not reused: it exponentiates
``scores / eps`` directly, which overflows to inf (then NaN) once ``|scores| / eps`` exceeds ~88
in float32, and it reads ``torch.nonzero`` on the host every iteration. DSC's pool is already
all-gathered (every process holds the global B*S*S pixels), so no all-reduce is needed either.
"""
import math

import torch

from .precision import float32_region


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, eps: float = 0.05, num_iters: int = 3) -> torch.Tensor:
    """SwAV's Sinkhorn-Knopp, in the log domain.

    Starts from ``Q = exp(scores / eps)`` and alternately scales the columns (prototypes) to
    total mass ``1 / K`` and the rows (pixels) to ``1 / N``, then multiplies by N. The last
    scaling is the row one, so every row is an exact distribution over the K prototypes; the
    column sums approach ``N / K`` (equipartition) as ``num_iters`` grows, and are only
    approximately equal after SwAV's 3 iterations.

    Working with ``log Q`` and ``logsumexp`` (which subtracts the max) keeps every value finite
    for any finite ``scores / eps``, e.g. very small ``eps``.

    Args:
        scores (torch.Tensor): Similarity of each pixel to each prototype. # (N, K)
        eps (float): Entropic regularisation; smaller is closer to a hard assignment.
            Defaults to 0.05.
        num_iters (int): Number of (column, row) scaling rounds, >= 1. Defaults to 3.

    Returns:
        torch.Tensor: Soft assignment Q in float32, rows sum to 1, columns to about N / K.
        # (N, K)
    """
    if scores.dim() != 2:
        raise ValueError(f'sinkhorn_knopp expects scores of shape (N, K), got shape '
                         f'{tuple(scores.shape)}; flatten the pixels to rows first.')
    if eps <= 0:
        raise ValueError(f'sinkhorn_knopp needs eps > 0 (the entropic regularisation), '
                         f'got eps={eps}.')
    if num_iters < 1:
        raise ValueError(f'sinkhorn_knopp needs num_iters >= 1 scaling rounds (the last one '
                         f'makes the rows distributions), got num_iters={num_iters}.')
    num_points, num_protos = scores.shape
    # float32 with autocast off, whatever an autocast policy would do with these ops.
    with float32_region(scores.device):
        log_q = scores.float() / eps  # (N, K), a new tensor: the in-place updates spare scores
        # In place: at large N the passes over the (N, K) matrix are memory-bound (1.8x faster).
        for _ in range(num_iters):
            # Each prototype (column) gets total mass 1 / K ...
            log_q -= torch.logsumexp(log_q, dim=0, keepdim=True) + math.log(num_protos)
            # ... and each pixel (row) total mass 1 / N.
            log_q -= torch.logsumexp(log_q, dim=1, keepdim=True) + math.log(num_points)
        return log_q.add_(math.log(num_points)).exp_()
