"""DSC-PM: pixel classes from learnable prototypes with Sinkhorn equipartition."""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from ..utils import at_least_float32, float32_region, sinkhorn_knopp
from .base_semantic_head import BaseSemanticHead


@MODELS.register_module()
class PrototypeSemanticHead(BaseSemanticHead):
    """DSC-PM: swapped prediction of Sinkhorn codes over K learnable prototypes.

    Each step the prototypes are renormalised to unit rows, the key pool is scored against
    them and Sinkhorn-Knopp equipartition (over the GLOBAL pool) turns the scores into soft
    codes ``q``. A query pixel predicts the code of its matched key pixel in the other view
    (SwAV's swapped prediction, DenseCL's direction)::

        L_i = -sum_k q_{m(i),k} log softmax_k(r_i.c_k / T)

    For the first ``freeze_prototypes_iters`` iterations the prototypes get no gradient
    (SwAV: random prototypes must not chase still-random features). The freeze is a
    ``torch.where`` on the iteration counter, so it costs no host sync.
    ``freeze_prototypes_epochs`` gives it in epochs instead; :class:`DSC` resolves it to
    iterations at run start (``DSCScheduleHook``).

    Above the model's ``max_contrast_pixels`` the equipartition runs over this process's bounded
    contrast set (its own key pixels and a sample of the others'), so Sinkhorn's (N, K) buffers
    stop growing with the number of GPUs. Sinkhorn and the softmax run in float32 with
    autocast off.

    Args:
        num_classes (int): Number of prototypes K. Defaults to 128.
        feat_dim (int): C. Defaults to 128.
        temperature (float): Softmax temperature T of the prediction. Defaults to 0.1.
        sinkhorn_eps (float): Entropic regularisation of Sinkhorn. Defaults to 0.05.
        sinkhorn_iters (int): Sinkhorn rounds. Defaults to 3.
        freeze_prototypes_iters (int): Iterations with frozen prototypes. Defaults to 0.
        freeze_prototypes_epochs (float, optional): The same in epochs, replacing
            ``freeze_prototypes_iters`` at run start. Defaults to None.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 num_classes: int = 128,
                 feat_dim: int = 128,
                 temperature: float = 0.1,
                 sinkhorn_eps: float = 0.05,
                 sinkhorn_iters: int = 3,
                 freeze_prototypes_iters: int = 0,
                 freeze_prototypes_epochs: Optional[float] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(num_classes, feat_dim, temperature, init_cfg=init_cfg)
        if freeze_prototypes_epochs is not None and freeze_prototypes_iters:
            raise ValueError(f'PrototypeSemanticHead got both freeze_prototypes_iters='
                             f'{freeze_prototypes_iters} and freeze_prototypes_epochs='
                             f'{freeze_prototypes_epochs}; give only one in semantic_head.')
        self.sinkhorn_eps = sinkhorn_eps
        self.sinkhorn_iters = sinkhorn_iters
        self.freeze_prototypes_iters = freeze_prototypes_iters
        self.freeze_prototypes_epochs = freeze_prototypes_epochs
        self.prototypes = nn.Parameter(F.normalize(torch.randn(num_classes, feat_dim), dim=1))

    def resolve_schedules(self, steps_per_epoch: float) -> None:
        """Turn ``freeze_prototypes_epochs`` (if given) into ``freeze_prototypes_iters``."""
        if self.freeze_prototypes_epochs is not None:
            self.freeze_prototypes_iters = round(self.freeze_prototypes_epochs *
                                                 steps_per_epoch)

    def loss(self, query: torch.Tensor, pool: torch.Tensor, match_index: torch.Tensor,
             cur_iter: torch.Tensor,
             cluster_pool: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """See :meth:`BaseSemanticHead.loss`; ``cluster_pool`` is not needed here."""
        with float32_region(query.device):
            with torch.no_grad():
                # Every process applies the same update, so DDP replicas stay identical.
                self.prototypes.copy_(F.normalize(self.prototypes, dim=1))
                codes = sinkhorn_knopp(pool.float() @ self.prototypes.float().t(),
                                       eps=self.sinkhorn_eps,
                                       num_iters=self.sinkhorn_iters)  # (N, K)
            frozen = cur_iter < self.freeze_prototypes_iters
            prototypes = torch.where(frozen, self.prototypes.detach(), self.prototypes)
            query32 = at_least_float32(query)
            logits = query32 @ at_least_float32(prototypes).t() / self.temperature  # (M, K)
            targets = codes[match_index].to(logits.dtype)  # (M, K)
            loss = -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
        return dict(loss=loss, **self.cluster_stats(codes.argmax(dim=1)))
