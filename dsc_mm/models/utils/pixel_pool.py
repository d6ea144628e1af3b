"""The key pixels that DSC's semantic term contrasts with (inter-image relations).

At or under ``max_pixels`` global key pixels this is the whole all-gathered pool, as in the
paper (256 images x 49 = 12,544 pixels at 8 GPUs x 32). Above it the pool is bounded: the
rank's own key pixels in full (every query's matched key pixel lives in the rank's own images)
plus a sample of the other ranks' pixels, exactly ``max_pixels`` in all, so the contrast set
of every rank looks like the paper's global pool whatever the number of GPUs, and memory, time
and the loss's scale (``log`` of the set size) stay those of 8 GPUs. The clustering sample is
drawn on its own terms: about ``max_pixels / W`` pixels of every rank, its own included, so
k-means sees about ``max_pixels`` pixels at every W and per-rank batch.
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
    cluster_pixels: Optional[torch.Tensor]  # (W*c, C) or None


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


class SampleSizes(NamedTuple):
    """Rows of a bounded contrast set, per rank (see :func:`sample_sizes`)."""
    cluster: int  # c: rows every rank all-gathers, all of them in the clustering sample
    other: int  # q: rows this rank's set takes from each other rank (r of them give q + 1)
    extra: int  # r = (cap - L) mod (W - 1)


def sample_sizes(world_size: int, local_pixels: int, max_pixels: int) -> SampleSizes:
    """How a pool of ``world_size`` x ``local_pixels`` rows above ``max_pixels`` is bounded.

    The clustering sample takes ``ceil(cap / W)`` rows from EVERY rank, its own included, so it
    holds about the cap (at most W - 1 rows more) whatever W, L and K; the contrast set takes
    ``cap - L`` rows from the other ranks, split as evenly as possible, so with the own L rows it
    holds exactly the cap (only the own rows when L alone reaches the cap). The c gathered rows
    of a rank cover both: above the cap (W x L > cap), (cap - L) / (W - 1) < cap / W, so
    q + 1 <= c wherever r > 0.
    """
    cluster = min(local_pixels, -(-max_pixels // world_size))
    other, extra = divmod(max(0, max_pixels - local_pixels), world_size - 1)
    return SampleSizes(cluster, other, extra)


def sample_rows(local_pixels: int, count: int, seed: int, rank: int,
                device: torch.device) -> torch.Tensor:
    """The ``count`` distinct local rows a rank sends, a random draw in O(L).

    Seeded with (``seed``, ``rank``): a rank needs no one else's draw, and a simulation of
    rank r can reproduce what r sends.

    Returns:
        torch.Tensor: Distinct rows in [0, L). # (count, )
    """
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + rank)
    return torch.randperm(local_pixels, generator=gen, device=device)[:count]


@torch.no_grad()
def bounded_pixel_pool(key_dense: torch.Tensor, match: torch.Tensor,
                       max_pixels: Optional[int], seed: int) -> ContrastSet:
    """The contrast set of this rank: the global pool, or a bounded one above ``max_pixels``.

    At or under the cap (or with one process, or ``max_pixels=None``) it is
    :func:`global_pixel_pool`'s pool, unchanged. Above it every rank all-gathers c rows of its
    own, a random draw (:func:`sample_rows`, :func:`sample_sizes`); together they are the
    clustering sample (``cluster_pixels``, the same on every rank, about the cap); the contrast
    set is this rank's own pixels followed by the first q or q + 1 rows of each other rank,
    exactly the cap::

        pixels = [own L = B*S*S pixels | cap - L pixels of the other ranks]

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
    local = _flatten(key_dense)  # (L, C)
    if max_pixels is None or world == 1 or world * local.shape[0] <= max_pixels:
        pool, match_rows = global_pixel_pool(key_dense, match)
        return ContrastSet(pool, match_rows, None)
    sizes = sample_sizes(world, local.shape[0], max_pixels)
    rank = get_rank()
    picks = sample_rows(local.shape[0], sizes.cluster, seed, rank, local.device)  # (c, )
    sent = all_gather(local[picks])  # W x (c, C), the same list on every rank
    sample = torch.cat(sent)  # (W*c, C)
    # The other ranks in ring order after this one; the first r of them give one row more.
    others = [sent[(rank + i) % world][:sizes.other + (i <= sizes.extra)]
              for i in range(1, world)]
    pixels = torch.cat([local, *others])  # (max(cap, L), C)
    return ContrastSet(pixels, _local_match_rows(match), sample)
