"""The key pixels that DSC's semantic term contrasts with (inter-image relations).

At or under ``max_pixels`` global key pixels this is the whole all-gathered pool, as in the
paper (256 images x 49 = 12,544 pixels at 8 GPUs x 32). Above it the pool is bounded: the
rank's own key pixels in full (every query's matched key pixel lives in the rank's own images)
plus a sample of the other ranks' pixels, so the contrast set of every rank looks like the
paper's global pool whatever the number of GPUs, and memory, time and the loss's scale
(``log`` of the set size) stay those of 8 GPUs.
"""
from typing import NamedTuple, Optional, Tuple

import torch
from mmengine.dist import all_gather, get_rank, get_world_size


class ContrastSet(NamedTuple):
    """What the semantic head of one rank receives.

    ``cluster_pixels`` is None when ``pixels`` is the whole global pool (cluster it directly);
    otherwise it is a sample that is IDENTICAL on every rank, for the clustering.
    """
    pixels: torch.Tensor  # (N_c, C) unit key pixels the queries contrast with
    match_rows: torch.Tensor  # (B*S*S, ) row of ``pixels`` holding each query's matched key
    cluster_pixels: Optional[torch.Tensor]  # (W*s, C) or None


def _flatten(key_dense: torch.Tensor) -> torch.Tensor:
    batch, channels, num_loc = key_dense.shape
    return key_dense.permute(0, 2, 1).reshape(batch * num_loc, channels)  # (B*S*S, C)


def _local_match_rows(match: torch.Tensor) -> torch.Tensor:
    """Row of each query's matched key pixel in this rank's flattened pixels. # (B*S*S, )"""
    batch, num_loc = match.shape
    image_start = torch.arange(batch, device=match.device)[:, None] * num_loc  # (B, 1)
    return (image_start + match).reshape(-1)


@torch.no_grad()
def global_pixel_pool(key_dense: torch.Tensor,
                      match: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """All-gather the key pixels of every process and locate each query's matched key pixel.

    Every process receives the same pool (rank 0's pixels first), so clustering or Sinkhorn on
    it yields the same classes everywhere. Processes must hold equal batch sizes (``drop_last``),
    as for mmpretrain's ``batch_shuffle_ddp``.

    Args:
        key_dense (torch.Tensor): Unit dense keys of this process's images. # (B, C, S*S)
        match (torch.Tensor): For each query location, its matched key location in the same
            image (cross-view top-1). # (B, S*S)

    Returns:
        Tuple[torch.Tensor, torch.Tensor]: ``pool`` # (W*B*S*S, C) and ``match_rows``, the pool
        row of each query location's matched key pixel # (B*S*S, )
    """
    local = _flatten(key_dense)  # (B*S*S, C)
    pool = torch.cat(all_gather(local), dim=0)  # (W*B*S*S, C)
    return pool, get_rank() * local.shape[0] + _local_match_rows(match)


def rows_per_rank(world_size: int, local_pixels: int, max_pixels: int) -> int:
    """Pixels s each rank contributes to the shared sample of a bounded contrast set.

    The rank's own ``local_pixels`` plus s from each of the ``world_size - 1`` others fill
    ``max_pixels`` (at least one per rank when the own pixels alone reach the cap).
    """
    return max(1, (max_pixels - local_pixels) // (world_size - 1))


def sample_rows(world_size: int, local_pixels: int, per_rank: int, seed: int,
                device: torch.device) -> torch.Tensor:
    """Which of its local pixels each rank puts in the shared sample, identical on every rank.

    A generator seeded with ``seed`` (the same on every rank, e.g. the step counter) draws the
    whole table, so no communication is needed to agree on it.

    Returns:
        torch.Tensor: Distinct local rows per rank. # (W, s)
    """
    gen = torch.Generator(device=device).manual_seed(seed)
    scores = torch.rand(world_size, local_pixels, generator=gen, device=device)
    return scores.argsort(dim=1)[:, :per_rank]


@torch.no_grad()
def bounded_pixel_pool(key_dense: torch.Tensor, match: torch.Tensor,
                       max_pixels: Optional[int], seed: int) -> ContrastSet:
    """The contrast set of this rank: the global pool, or a bounded one above ``max_pixels``.

    At or under the cap (or with one process, or ``max_pixels=None``) it is
    :func:`global_pixel_pool`'s pool, unchanged. Above it, each rank all-gathers only its s
    sampled pixels (:func:`sample_rows`), so the gathered sample (``cluster_pixels``) is the
    same everywhere; the contrast set is this rank's own pixels followed by the other ranks'
    sampled ones (its own sampled rows would be duplicates and are left out)::

        pixels = [own B*S*S pixels | s pixels of each other rank]  # about max_pixels rows

    The decision is taken on the host from shapes and the world size (no device sync).

    Args:
        key_dense (torch.Tensor): Unit dense keys of this process's images. # (B, C, S*S)
        match (torch.Tensor): Matched key location of each query location. # (B, S*S)
        max_pixels (int, optional): Cap on the global pool; None: no cap.
        seed (int): Shared per-step seed (the same on every rank).

    Returns:
        ContrastSet: see its fields.
    """
    world = get_world_size()
    local = _flatten(key_dense)  # (B*S*S, C)
    if max_pixels is None or world == 1 or world * local.shape[0] <= max_pixels:
        pool, match_rows = global_pixel_pool(key_dense, match)
        return ContrastSet(pool, match_rows, None)
    per_rank = rows_per_rank(world, local.shape[0], max_pixels)
    rank = get_rank()
    picks = sample_rows(world, local.shape[0], per_rank, seed, local.device)  # (W, s)
    sample = torch.cat(all_gather(local[picks[rank]]), dim=0)  # (W*s, C), same on all ranks
    others = torch.cat([sample[:rank * per_rank], sample[(rank + 1) * per_rank:]])
    pixels = torch.cat([local, others])  # (B*S*S + (W-1)*s, C)
    return ContrastSet(pixels, _local_match_rows(match), sample)
