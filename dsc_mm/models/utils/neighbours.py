"""Pixel neighbour discovery for DSC's pixel term (intra-image relations across views).

Similarities are taken between L2-normalised backbone C5 vectors, as DenseCL does for its
single match: the backbone map is less tied to the contrastive projection being learned.
"""
import torch


def cross_view_neighbours(query_feats: torch.Tensor, key_feats: torch.Tensor,
                          topk: int) -> torch.Tensor:
    """For every query location, the ``topk`` most similar key locations of the other view.

    With ``topk=1`` this is DenseCL's ``backbone_sim_matrix.max(dim=2)[1]``.

    Args:
        query_feats (torch.Tensor): Unit backbone vectors of view 1. # (B, D, S*S)
        key_feats (torch.Tensor): Unit backbone vectors of view 2. # (B, D, S*S)
        topk (int): Number of neighbours k_x (1 <= k_x <= S*S).

    Returns:
        torch.Tensor: Key location indices, most similar first. # (B, S*S, k_x)
    """
    sim = torch.matmul(query_feats.permute(0, 2, 1), key_feats)  # (B, S*S, S*S)
    if topk == 1:
        # max() rather than topk(1) so ties resolve exactly as in DenseCL.
        return sim.max(dim=2)[1].unsqueeze(-1)
    return sim.topk(topk, dim=2).indices


def same_view_neighbours(feats: torch.Tensor, topk: int) -> torch.Tensor:
    """For every location, the ``topk`` most similar OTHER locations of the same map.

    Args:
        feats (torch.Tensor): Unit backbone vectors of one view (the key encoder's view 1).
            # (B, D, S*S)
        topk (int): Number of neighbours k_s (1 <= k_s < S*S).

    Returns:
        torch.Tensor: Location indices, most similar first, never the location itself.
        # (B, S*S, k_s)
    """
    sim = torch.matmul(feats.permute(0, 2, 1), feats)  # (B, S*S, S*S)
    # A location is always its own best match (cosine 1); -inf on the diagonal excludes it.
    eye = torch.eye(sim.shape[-1], dtype=torch.bool, device=sim.device)
    sim = sim.masked_fill(eye, float('-inf'))
    return sim.topk(topk, dim=2).indices
