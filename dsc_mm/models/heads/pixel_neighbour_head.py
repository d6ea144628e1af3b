"""DSC's pixel term: multi-positive InfoNCE over discovered pixel neighbours."""
from typing import Optional, Tuple

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..utils import (at_least_float32, cross_view_neighbours, float32_region,
                     same_view_neighbours)


def _gather_locations(grid: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick, for every location i, the embeddings at ``index[b, i, :]``.

    Args:
        grid (torch.Tensor): Dense embeddings. # (B, C, S*S)
        index (torch.Tensor): Location indices. # (B, S*S, k)

    Returns:
        torch.Tensor: The picked embeddings. # (B, C, S*S, k)
    """
    batch, channels, _ = grid.shape
    _, num_loc, topk = index.shape
    flat = index.reshape(batch, 1, num_loc * topk).expand(-1, channels, -1)
    return torch.gather(grid, 2, flat).view(batch, channels, num_loc, topk)


@MODELS.register_module()
class PixelNeighbourHead(BaseModule):
    """Pixel contrast with neighbours discovered across and within views.

    Positives of the dense query ``r_i`` (view 1) are

    - cross-view: the ``cross_view_topk`` (k_x) key locations of view 2 whose backbone C5
      vector is most similar to ``b^q_i`` (k_x=1 is DenseCL's argmax match);
    - same-view: the ``same_view_topk`` (k_s) locations of view 1's KEY map most similar to
      location i, excluding i itself. This needs the key encoder on view 1 too (one extra
      no-grad forward); k_s=0 switches it off and the model then skips that forward.

    The loss averages one InfoNCE per positive, each against the same negatives (the pooled
    dense keys of the queue)::

        L_i = -1/|P(i)| sum_{p in P(i)} log exp(r_i.t_p/T) / (exp(r_i.t_p/T) + sum_n exp(r_i.n/T))

    With one positive it is exactly DenseCL's dense loss (cross entropy on [l_pos, l_neg]/T).

    Args:
        cross_view_topk (int): k_x, >= 1. Defaults to 1.
        same_view_topk (int): k_s, >= 0. Defaults to 0.
        temperature (float): T. Defaults to 0.2.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 cross_view_topk: int = 1,
                 same_view_topk: int = 0,
                 temperature: float = 0.2,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if cross_view_topk < 1 or same_view_topk < 0:
            raise ValueError(f'PixelNeighbourHead needs cross_view_topk >= 1 and '
                             f'same_view_topk >= 0, got {cross_view_topk} and '
                             f'{same_view_topk}; fix pixel_head in the model config.')
        self.cross_view_topk = cross_view_topk
        self.same_view_topk = same_view_topk
        self.temperature = temperature

    @property
    def uses_same_view(self) -> bool:
        """Whether the key encoder must also encode view 1."""
        return self.same_view_topk > 0

    def find_neighbours(
        self,
        query_feats: torch.Tensor,
        key_feats: torch.Tensor,
        key1_feats: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Discover the neighbours from unit backbone C5 vectors (no gradient needed).

        Args:
            query_feats (torch.Tensor): Query encoder, view 1. # (B, D, S*S)
            key_feats (torch.Tensor): Key encoder, view 2. # (B, D, S*S)
            key1_feats (torch.Tensor, optional): Key encoder, view 1; required when k_s > 0.
                # (B, D, S*S)

        Returns:
            Tuple: cross-view indices into view 2 # (B, S*S, k_x), and same-view indices into
            view 1 # (B, S*S, k_s), or None when k_s = 0.
        """
        num_loc = key_feats.shape[-1]
        if self.cross_view_topk > num_loc or self.same_view_topk >= num_loc:
            raise ValueError(f'The feature map has only {num_loc} locations, fewer than '
                             f'cross_view_topk={self.cross_view_topk} (or <= same_view_topk='
                             f'{self.same_view_topk}); use larger crops or smaller k.')
        with torch.no_grad():
            cross = cross_view_neighbours(query_feats, key_feats, self.cross_view_topk)
            same = None
            if self.uses_same_view:
                same = same_view_neighbours(key1_feats, self.same_view_topk)
        return cross, same

    def loss(self,
             query_grid: torch.Tensor,
             key_grid: torch.Tensor,
             cross_index: torch.Tensor,
             queue: torch.Tensor,
             key1_grid: Optional[torch.Tensor] = None,
             same_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Multi-positive InfoNCE of every query location.

        Args:
            query_grid (torch.Tensor): Unit dense queries of view 1. # (B, C, S*S)
            key_grid (torch.Tensor): Unit dense keys of view 2. # (B, C, S*S)
            cross_index (torch.Tensor): Cross-view neighbours. # (B, S*S, k_x)
            queue (torch.Tensor): Negatives (pooled dense keys). # (C, L)
            key1_grid (torch.Tensor, optional): Unit dense keys of view 1. # (B, C, S*S)
            same_index (torch.Tensor, optional): Same-view neighbours. # (B, S*S, k_s)

        Returns:
            torch.Tensor: The scalar loss.
        """
        # float32 under AMP too (autocast leaves these element-wise ops in the input dtype).
        query_grid, key_grid = at_least_float32(query_grid), at_least_float32(key_grid)
        if key1_grid is not None:
            key1_grid = at_least_float32(key1_grid)
        # Element-wise product and sum (not a bmm) so that k_x=1 reproduces DenseCL's
        # arithmetic exactly, which the reduction test checks to 1e-6.
        pos = (query_grid.unsqueeze(-1) * _gather_locations(key_grid, cross_index)).sum(1)
        if same_index is not None:
            pos_same = (query_grid.unsqueeze(-1) *
                        _gather_locations(key1_grid, same_index)).sum(1)  # (B, S*S, k_s)
            pos = torch.cat([pos, pos_same], dim=2)  # (B, S*S, k_x + k_s)
        pos = pos.reshape(-1, pos.shape[-1])  # (B*S*S, P)
        queries = query_grid.permute(0, 2, 1).reshape(-1, query_grid.shape[1])  # (B*S*S, C)
        # 1/T is folded into the (B*S*S, C) queries instead of dividing the (B*S*S, L) logits:
        # at L = 65536 that division and its backward were two full passes over the largest
        # matrix of the step (about 40 ms of a 1 s ResNet-18 step on one CPU core) and one
        # more (B*S*S, L) buffer at the memory peak.
        # float32 with autocast off: the log-sum-exp runs over the whole queue.
        with float32_region(queries.device):
            neg = torch.einsum('nc,ck->nk', [queries / self.temperature,
                                             at_least_float32(queue.detach())])
            return multi_positive_info_nce_logits(pos / self.temperature, neg)  # (B*S*S, L)


def multi_positive_info_nce(pos: torch.Tensor, neg: torch.Tensor,
                            temperature: float) -> torch.Tensor:
    """Mean over rows and positives of ``-log softmax([pos_p, neg] / T)[0]``.

    The negatives' log-sum-exp is computed once per row and combined with each positive, so
    memory stays (N, L) instead of (N * P, 1 + L).

    Args:
        pos (torch.Tensor): Positive logits (cosines). # (N, P)
        neg (torch.Tensor): Negative logits (cosines). # (N, L)
        temperature (float): T.

    Returns:
        torch.Tensor: The scalar loss.
    """
    return multi_positive_info_nce_logits(pos / temperature, neg / temperature)


def multi_positive_info_nce_logits(pos_logits: torch.Tensor,
                                   neg_logits: torch.Tensor) -> torch.Tensor:
    """:func:`multi_positive_info_nce` on logits already divided by the temperature.

    Args:
        pos_logits (torch.Tensor): Positive cosines / T. # (N, P)
        neg_logits (torch.Tensor): Negative cosines / T. # (N, L)

    Returns:
        torch.Tensor: The scalar loss.
    """
    lse_neg = torch.logsumexp(neg_logits, dim=1, keepdim=True)  # (N, 1)
    return (torch.logaddexp(pos_logits, lse_neg) - pos_logits).mean()
