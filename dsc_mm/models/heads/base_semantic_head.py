"""The contract every DSC semantic (pixel-category) head fulfils."""
from abc import ABCMeta, abstractmethod
from typing import Dict, Optional

import torch
from mmengine.model import BaseModule


class BaseSemanticHead(BaseModule, metaclass=ABCMeta):
    """Dense semantic contrast: discover pixel classes on the key pool, contrast by class.

    The model calls :meth:`loss` once per step (only once the semantic weight is > 0) with

    - ``query``: this process's dense queries of view 1, unit rows, with gradient;
    - ``pool``: the key pixels the queries contrast with, unit rows, no gradient: the key dense
      embeddings of the GLOBAL batch (all-gathered, the same on every process) up to the
      model's ``max_contrast_pixels``, a bounded set above it (``models.utils.pixel_pool``);
    - ``match_index``: for every query pixel, the row of ``pool`` holding its matched
      (cross-view top-1) key pixel; the query pixel takes that key pixel's class;
    - ``cur_iter``: the model's iteration counter (a 0-dim tensor, kept on the device so no
      host sync is needed for schedules such as frozen prototypes);
    - ``cluster_pool``: None when ``pool`` is the global pool; otherwise a bounded sample of
      the global pool that is the same on every process, to cluster on.

    and receives a dict with ``loss`` (scalar, unweighted) and the detached statistics
    ``cluster_nonempty`` (number of classes in use) and ``cluster_entropy`` (entropy of the
    class sizes in nats; log K when all classes are equally used).

    Args:
        num_classes (int): Number of pixel classes K.
        feat_dim (int): Dimension C of the dense embeddings.
        temperature (float): Softmax temperature of the loss.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 feat_dim: int,
                 temperature: float,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.feat_dim = feat_dim
        self.temperature = temperature

    @property
    def min_cluster_pixels(self) -> int:
        """Fewest pixels the clustering sample of a bounded contrast set may hold (0: any)."""
        return 0

    @abstractmethod
    def loss(self, query: torch.Tensor, pool: torch.Tensor, match_index: torch.Tensor,
             cur_iter: torch.Tensor,
             cluster_pool: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Compute the semantic loss.

        Args:
            query (torch.Tensor): Unit dense queries of this process. # (M, C), M = B*S*S
            pool (torch.Tensor): Unit key pixels to contrast with. # (N, C), N <= W*B*S*S
            match_index (torch.Tensor): Pool row of each query's matched key pixel. # (M, )
            cur_iter (torch.Tensor): Iteration counter. # ()
            cluster_pool (torch.Tensor, optional): Sample to cluster on, the same on every
                process; None: cluster ``pool``. # (N_s, C). Defaults to None.

        Returns:
            Dict[str, torch.Tensor]: ``loss``, ``cluster_nonempty``, ``cluster_entropy``.
        """

    @torch.no_grad()
    def cluster_stats(self, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Usage statistics of hard class labels.

        ``scatter_add_`` instead of ``bincount``: on CUDA ``bincount`` reads the max label
        on the host.

        Args:
            labels (torch.Tensor): Class of each pool pixel. # (N, )

        Returns:
            Dict[str, torch.Tensor]: ``cluster_nonempty`` and ``cluster_entropy`` (float, 0-dim).
        """
        sizes = torch.zeros(self.num_classes, device=labels.device).scatter_add_(
            0, labels, torch.ones_like(labels, dtype=torch.float))  # (K, )
        freq = sizes / sizes.sum()
        entropy = -(freq * torch.log(freq.clamp_min(1e-12))).sum()
        return dict(cluster_nonempty=(sizes > 0).sum().float(), cluster_entropy=entropy)
