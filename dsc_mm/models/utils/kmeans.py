"""Spherical k-means on a pixel pool, as used by DSC-KM to discover semantic classes.

mmpretrain's ``models.utils.vector_quantizer.kmeans`` (BEiT v2's codebook init) is not reused:
it seeds with uniform sampling instead of k-means++, has no warm start, and leaves an empty
cluster on its stale centroid, so fewer than K classes can survive. DSC needs K non-empty
classes every step, warm-started from the previous step's centroids.

Everything here runs under ``torch.no_grad()`` with a fixed number of passes, and the loops
have no ``.item()`` and no data-dependent shapes (the number of empty clusters is never read on
the host), so an accelerator is not made to wait for the host between passes.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .precision import float32_region


def _check_pool(x: torch.Tensor, num_clusters: int) -> None:
    """Raise a one-sentence ``ValueError`` when the pool cannot hold ``num_clusters`` clusters."""
    if x.dim() != 2:
        raise ValueError(f'spherical k-means expects a pixel pool of shape (N, C), got shape '
                         f'{tuple(x.shape)}; flatten the dense embeddings to (B*S*S, C) first.')
    if num_clusters < 1 or x.shape[0] < num_clusters:
        raise ValueError(f'spherical k-means cannot form num_clusters={num_clusters} non-empty '
                         f'clusters from a pool of N={x.shape[0]} pixels; lower num_clusters or '
                         f'enlarge the (global) batch.')


@torch.no_grad()
def kmeans_plus_plus(x: torch.Tensor,
                     num_clusters: int,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Greedy k-means++ seeding on the unit sphere, with cosine distance.

    For unit vectors ``||a - b||^2 = 2 * (1 - a.b)``, so sampling proportionally to the cosine
    distance ``1 - max_j x.c_j`` is exactly the classical D^2 weighting of k-means++. As in
    scikit-learn's default, each seed after the first is the best of ``2 + log(K)`` sampled
    candidates (the one that lowers the total distance most): plain k-means++ often puts two
    seeds in one small cluster, a local optimum that Lloyd steps cannot leave.

    Args:
        x (torch.Tensor): Pixel pool with unit rows. # (N, C)
        num_clusters (int): Number of seeds K; needs ``N >= K``.
        generator (torch.Generator, optional): Random generator on ``x.device``; the seeds are a
            deterministic function of its state. Defaults to None (torch's global generator).

    Returns:
        torch.Tensor: K rows of ``x`` with distinct indices, in float32. # (K, C)
    """
    _check_pool(x, num_clusters)
    with float32_region(x.device):
        return _kmeans_plus_plus(x.float(), num_clusters, generator)


def _kmeans_plus_plus(x: torch.Tensor, num_clusters: int,
                      generator: Optional[torch.Generator]) -> torch.Tensor:
    """:func:`kmeans_plus_plus` on a float32 pool, outside autocast."""
    num_points, device = x.shape[0], x.device
    num_trials = 2 + int(math.log(num_clusters))
    chosen = torch.zeros(num_points, dtype=torch.bool, device=device)
    indices = torch.empty(num_clusters, dtype=torch.long, device=device)
    idx = torch.randint(num_points, (1, ), generator=generator, device=device)  # (1, )
    indices[:1] = idx
    chosen[idx] = True
    # Cosine distance of every point to its nearest seed so far.
    min_dist = (1 - x @ x[idx].t()).squeeze(1).clamp_min(0)  # (N, )
    for k in range(1, num_clusters):
        # Chosen points get weight 0 explicitly: rounding leaves 1 - x.x around 1e-7, and a
        # duplicate index would give two identical centroids, one of them empty.
        weights = min_dist.masked_fill(chosen, 0)
        # When every unchosen point duplicates a seed all weights are 0, which multinomial
        # rejects; fall back to uniform over unchosen points (N >= K keeps one). torch.where
        # instead of an ``if`` keeps the decision on the device.
        weights = torch.where(weights.sum() > 0, weights, (~chosen).float())
        cand = torch.multinomial(
            weights, num_trials, replacement=True, generator=generator)  # (L, )
        # In place: this loop runs K times over (L, N) buffers, memory traffic dominates.
        cand_dist = (x[cand] @ x.t()).neg_().add_(1).clamp_min_(0)  # (L, N)
        cand_dist = torch.minimum(cand_dist, min_dist, out=cand_dist)
        best = cand_dist.sum(dim=1).argmin().unsqueeze(0)  # (1, )
        idx = cand[best]
        min_dist = cand_dist[best].squeeze(0)
        indices[k:k + 1] = idx
        chosen[idx] = True
    return x[indices]


def _assign(x: torch.Tensor, centroids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cosine assignment; a function so the (N, K) similarity is freed before the next one."""
    best_sim, labels = (x @ centroids.t()).max(dim=1)  # (N, ), (N, )
    return best_sim, labels


@torch.no_grad()
def nearest_centroid(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Label of each point: its most similar centroid, in float32 even under autocast.

    Args:
        x (torch.Tensor): Unit points. # (N, C)
        centroids (torch.Tensor): Unit centroids. # (K, C)

    Returns:
        torch.Tensor: int64 labels in [0, K). # (N, )
    """
    with float32_region(x.device):
        return _assign(x.float(), centroids.float())[1]


def _reseed_empty(best_sim: torch.Tensor, labels: torch.Tensor,
                  num_clusters: int) -> torch.Tensor:
    """Move the points farthest from their centroid into the empty clusters.

    Each non-empty cluster keeps (at least) its closest point, so taking points never empties
    another cluster, and ``N >= K`` guarantees enough takeable points:
    ``N - #non-empty >= K - #non-empty = #empty``. All in fixed-shape tensor ops (the number
    of empty clusters is never read on the host).

    Args:
        best_sim (torch.Tensor): Cosine of each point to its assigned centroid. # (N, )
        labels (torch.Tensor): Assigned cluster of each point. # (N, )
        num_clusters (int): K.

    Returns:
        torch.Tensor: Labels in which every cluster is non-empty. # (N, )
    """
    num_points = labels.shape[0]
    device = labels.device
    # scatter_add_, not bincount: bincount's output size depends on the data (a host sync on CUDA).
    counts = torch.zeros(num_clusters, dtype=torch.long, device=device).scatter_add_(
        0, labels, torch.ones_like(labels))  # (K, )
    empty = counts == 0  # (K, )
    # The closest point of each cluster (lowest index among ties) is protected.
    cluster_best = torch.full((num_clusters, ), -2.0, device=device).scatter_reduce(
        0, labels, best_sim, reduce='amax')
    point_ids = torch.arange(num_points, device=device)
    candidate = torch.where(best_sim == cluster_best[labels], point_ids, num_points)
    keeper = torch.full((num_clusters, ), num_points, device=device).scatter_reduce(
        0, labels, candidate, reduce='amin')  # (K, ), N for empty clusters
    protected = torch.zeros(num_points + 1, dtype=torch.bool, device=device)
    protected[keeper] = True
    farness = best_sim.masked_fill(protected[:num_points], float('inf'))
    # K farthest takeable points, farthest first; the r-th empty cluster takes the r-th one.
    farthest = farness.topk(num_clusters, largest=False).indices  # (K, )
    rank = (empty.cumsum(0) - 1).clamp_min(0)  # (K, )
    # Non-empty clusters write into a dummy slot N that is dropped afterwards.
    target = torch.where(empty, farthest[rank], num_points)  # (K, )
    labels = torch.cat([labels, labels.new_zeros(1)])
    labels[target] = torch.arange(num_clusters, device=device)
    return labels[:num_points]


@torch.no_grad()
def spherical_kmeans(x: torch.Tensor,
                     num_clusters: int,
                     num_iters: int = 10,
                     init_centroids: Optional[torch.Tensor] = None,
                     generator: Optional[torch.Generator] = None
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Spherical k-means (cosine assignment, normalised-mean centroids) with Lloyd steps.

    One Lloyd step assigns every point to its most similar centroid, moves points into empty
    clusters (see ``_reseed_empty``), then sets each centroid to the normalised mean of its
    points. The returned labels are those of the last step, so centroid k is exactly the
    normalised mean of the points labelled k, and every cluster is non-empty (for ``N >= K``
    points that are not duplicates of one another).

    Memory: one (N, K) similarity matrix at a time; the means use ``index_add_``. Time per step
    is O(N * K * C), linear in N.

    Args:
        x (torch.Tensor): Pixel pool; rows are L2-normalised here (a no-op for unit rows).
            # (N, C)
        num_clusters (int): Number of clusters K; needs ``N >= K``.
        num_iters (int): Number of Lloyd steps (fixed, no convergence test, so no host sync).
            Defaults to 10.
        init_centroids (torch.Tensor, optional): Warm start, e.g. the previous training step's
            centroids. # (K, C). Defaults to None: k-means++ seeding with ``generator``.
        generator (torch.Generator, optional): Random generator on ``x.device`` for the
            k-means++ seeding. Defaults to None (torch's global generator).

    Returns:
        Tuple[torch.Tensor, torch.Tensor]: ``labels`` (int64) # (N, ) and ``centroids``
        (float32, unit rows) # (K, C).
    """
    _check_pool(x, num_clusters)
    if num_iters < 1:
        raise ValueError(f'spherical k-means needs num_iters >= 1 Lloyd steps to produce '
                         f'labels, got {num_iters}.')
    # float32 with autocast off: under AMP the assignments' matmuls would otherwise run in
    # bf16/fp16 (even on float32 inputs) and the index_add_ means of thousands of rows lose
    # precision.
    with float32_region(x.device):
        return _lloyd(F.normalize(x.float(), dim=1), num_clusters, num_iters, init_centroids,
                      generator)


def _lloyd(x: torch.Tensor, num_clusters: int, num_iters: int,
           init_centroids: Optional[torch.Tensor],
           generator: Optional[torch.Generator]) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`spherical_kmeans` on a float32 unit pool, outside autocast."""
    if init_centroids is None:
        centroids = kmeans_plus_plus(x, num_clusters, generator=generator)
    else:
        if init_centroids.shape != (num_clusters, x.shape[1]):
            raise ValueError(f'init_centroids has shape {tuple(init_centroids.shape)} but the '
                             f'warm start needs ({num_clusters}, {x.shape[1]}) = (num_clusters, '
                             f'C); pass the centroids returned by the previous call.')
        centroids = F.normalize(init_centroids.to(x), dim=1)

    for _ in range(num_iters):
        best_sim, labels = _assign(x, centroids)
        labels = _reseed_empty(best_sim, labels, num_clusters)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)  # (K, C)
        norms = sums.norm(dim=1, keepdim=True)  # (K, 1)
        # Points that cancel out (e.g. an antipodal pair) have no mean direction: keep the
        # previous centroid rather than a zero vector that nothing could be assigned to.
        centroids = torch.where(norms > 1e-6, sums / norms.clamp_min(1e-6), centroids)
    return labels, centroids
