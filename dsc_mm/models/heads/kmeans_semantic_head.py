"""DSC-KM: pixel classes from spherical k-means on the global key pool."""
from typing import Dict, Optional

import torch
from mmengine.dist import broadcast
from mmpretrain.registry import MODELS

from ..utils import at_least_float32, float32_region, nearest_centroid, spherical_kmeans
from .base_semantic_head import BaseSemanticHead


@MODELS.register_module()
class KMeansSemanticHead(BaseSemanticHead):
    """DSC-KM: spherical k-means labels + supervised pixel contrast.

    Each step clusters the global key pool into K classes with ``num_iters`` Lloyd steps,
    warm-started from the previous step's centroids (k-means++ at the very first step); the
    centroids are a buffer, so they are checkpointed and restored on resume. A query pixel takes
    the label of its matched key pixel; its positives are all pool pixels with that label and
    the denominator runs over the whole pool (supervised contrastive loss)::

        L_i = -1/|P(i)| sum_{p in P(i)} log exp(r_i.t_p/T) / sum_{a in pool} exp(r_i.t_a/T)

    ``P(i)`` always contains the matched key pixel itself, so it is never empty.

    When the model bounds the contrast set (``cluster_pool`` given), k-means runs on that
    shared sample (about ``max_contrast_pixels`` pixels) and the contrast pixels take the label
    of their nearest centroid; the model refuses a cap under ``K x min_pixels_per_class``.

    Clustering, the logits and their log-sum-exp run in float32 with autocast off.

    Args:
        num_classes (int): K. Defaults to 128.
        feat_dim (int): C. Defaults to 128.
        num_iters (int): Lloyd steps per training step. Defaults to 10.
        temperature (float): T. Defaults to 0.2.
        min_pixels_per_class (int): Fewest pixels per class in the clustering sample of a
            bounded contrast set (the paper's pool has 98 per class at K = 128). Defaults to 8.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 num_classes: int = 128,
                 feat_dim: int = 128,
                 num_iters: int = 10,
                 temperature: float = 0.2,
                 min_pixels_per_class: int = 8,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(num_classes, feat_dim, temperature, init_cfg=init_cfg)
        self.num_iters = num_iters
        self.min_pixels_per_class = min_pixels_per_class
        self.register_buffer('centroids', torch.zeros(num_classes, feat_dim))
        self.register_buffer('initialized', torch.zeros((), dtype=torch.bool))
        # Host copy of ``initialized``, so the warm-start decision costs no device sync per
        # step; None means "read the buffer once" (after construction or load_state_dict).
        self._host_initialized: Optional[bool] = None

    @property
    def min_cluster_pixels(self) -> int:
        """K x ``min_pixels_per_class``."""
        return self.num_classes * self.min_pixels_per_class

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._host_initialized = None

    @torch.no_grad()
    def cluster(self, pool: torch.Tensor) -> torch.Tensor:
        """Update the centroids on ``pool`` and return its labels.

        Every process clusters the same (all-gathered) pool; rank 0's result is then broadcast
        (a no-op with one process) so that labels agree exactly even if kernels differ in
        rounding between devices.

        Args:
            pool (torch.Tensor): Unit key pixels, the same on every process. # (N, C)

        Returns:
            torch.Tensor: Labels in [0, K). # (N, )
        """
        if self._host_initialized is None:
            self._host_initialized = bool(self.initialized)
        init = self.centroids if self._host_initialized else None
        labels, centroids = spherical_kmeans(
            pool, self.num_classes, num_iters=self.num_iters, init_centroids=init)
        broadcast(labels, src=0)
        broadcast(centroids, src=0)
        self.centroids.copy_(centroids)
        self.initialized.fill_(True)
        self._host_initialized = True
        return labels

    def loss(self, query: torch.Tensor, pool: torch.Tensor, match_index: torch.Tensor,
             cur_iter: torch.Tensor,
             cluster_pool: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """See :meth:`BaseSemanticHead.loss`."""
        if cluster_pool is None:
            pool_labels = self.cluster(pool)  # (N, )
            # Usage counted on a plain nearest-centroid assignment: the k-means labels are never
            # empty because empty clusters are re-seeded, which would hide a collapse.
            nearest = nearest_centroid(pool, self.centroids)  # (N, )
        else:
            self.cluster(cluster_pool)
            pool_labels = nearest = nearest_centroid(pool, self.centroids)  # (N, )
        query_labels = pool_labels[match_index]  # (M, )
        with float32_region(query.device):
            query32, pool32 = at_least_float32(query), at_least_float32(pool)
            logits = query32 @ pool32.t() / self.temperature  # (M, N)
            # L_i = lse_i - mean_{p in P(i)} r_i.t_p / T. The positives' mean needs no (M, N)
            # mask: sum_{p in class c} r_i.t_p = r_i.(sum of class c's pixels), so a (K, C)
            # matrix of class sums replaces the mask, log_softmax and product (three (M, N)
            # buffers fewer).
            with torch.no_grad():
                class_sums = torch.zeros_like(self.centroids, dtype=pool32.dtype).index_add_(
                    0, pool_labels, pool32)  # (K, C)
                class_sizes = torch.zeros_like(class_sums[:, 0]).index_add_(
                    0, pool_labels, torch.ones_like(pool32[:, 0]))  # (K, ), >= 1 for queries
            positive_mean = (query32 * class_sums[query_labels]).sum(1) / (
                class_sizes[query_labels] * self.temperature)  # (M, )
            loss = (torch.logsumexp(logits, dim=1) - positive_mean).mean()
        return dict(loss=loss, **self.cluster_stats(nearest))
