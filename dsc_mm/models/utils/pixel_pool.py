"""The global key pixel pool of DSC's semantic term (inter-image relations)."""
from typing import Tuple

import torch
from mmengine.dist import all_gather, get_rank


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
    batch, channels, num_loc = key_dense.shape
    local = key_dense.permute(0, 2, 1).reshape(batch * num_loc, channels)  # (B*S*S, C)
    pool = torch.cat(all_gather(local), dim=0)  # (W*B*S*S, C)
    image_start = torch.arange(batch, device=match.device)[:, None] * num_loc  # (B, 1)
    match_rows = get_rank() * batch * num_loc + image_start + match  # (B, S*S)
    return pool, match_rows.reshape(-1)
