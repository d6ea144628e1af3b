"""Dense Semantic Contrast (Li et al., ACM MM 2021) on top of mmpretrain's DenseCL."""
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import ExponentialMovingAverage
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.models.utils import batch_shuffle_ddp, batch_unshuffle_ddp
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils import FeatureQueue, global_pixel_pool


class Encoded(NamedTuple):
    """One view through backbone + DenseCLNeck, everything L2-normalised."""
    backbone: torch.Tensor  # (B, D, S*S) C5 vectors, for neighbour discovery
    global_emb: torch.Tensor  # (B, C) instance embedding
    dense: torch.Tensor  # (B, C, S*S) pixel embeddings
    pooled_dense: torch.Tensor  # (B, C) mean of the dense map, for the pixel queue


@MODELS.register_module()
class DSC(BaseSelfSupervisor):
    """Dense Semantic Contrast: instance + pixel (with neighbours) + semantic terms.

    Total loss (all weights are config knobs, ``docs/pretrain.md`` lists the defaults)::

        w_inst * L_instance + w_pix(t) * L_pixel + beta(t) * L_semantic

    - ``L_instance``: MoCo v2 InfoNCE of the global embeddings (``head``, mmpretrain's
      ``ContrastiveHead``), negatives from ``instance_queue``.
    - ``L_pixel``: ``pixel_head`` (:class:`PixelNeighbourHead`), negatives from
      ``pixel_queue`` (pooled dense keys, as DenseCL's ``queue2``).
    - ``L_semantic``: ``semantic_head`` (:class:`KMeansSemanticHead` for DSC-KM or
      :class:`PrototypeSemanticHead` for DSC-PM) on the key pixels of the global batch.

    Schedules read the iteration counter ``iter_count`` (a buffer, so resume restores it):

    - ``dense_start_iters``: DenseCL's warm-up (its ``DenseCLHook``). Before it the pixel weight
      is 0 and, exactly as DenseCL's ``loss_lambda=0`` does, the instance term takes the whole
      weight ``w_inst + w_pix``.
    - ``semantic_ramp=(start, end)``: beta is 0 before ``start`` and grows linearly to
      ``semantic_weight`` at ``end`` (k-means on random features is noise).

    Reductions (tested against mmpretrain): ``semantic_weight=0``, k_x=1, k_s=0 is DenseCL
    with ``loss_lambda=w_pix``; with also ``pixel_weight=0`` (and ``instance_weight=1``) it is
    MoCo v2. A term whose weight is statically 0 is not computed at all.

    Args:
        backbone (dict): Backbone config (ResNet, C5 output).
        neck (dict): ``DenseCLNeck`` config (global + dense branches).
        head (dict): Instance head config (``ContrastiveHead``).
        pixel_head (dict): ``PixelNeighbourHead`` config (k_x, k_s, T).
        semantic_head (dict, optional): A :class:`BaseSemanticHead` config, or None for no
            semantic term. Defaults to None.
        queue_len (int): Length of both queues. Defaults to 65536.
        feat_dim (int): Embedding dimension C. Defaults to 128.
        momentum (float): EMA momentum in mmpretrain's convention,
            ``key = (1 - momentum) * key + momentum * query``: 0.001 here is MoCo's m = 0.999.
            Values above 0.5 are refused (they look like MoCo's convention). Defaults to 0.001.
        instance_weight (float): w_inst. Defaults to 0.5.
        pixel_weight (float): w_pix. Defaults to 0.5.
        semantic_weight (float): beta. Defaults to 0.5.
        dense_start_iters (int): Pixel-term warm-up in iterations. Defaults to 0.
        semantic_ramp (Tuple[int, int]): (start, end) iterations of the beta ramp.
            Defaults to (0, 0), i.e. full beta from the start.
        pretrained (str, optional): Checkpoint to initialise from. Defaults to None.
        data_preprocessor (dict, optional): Defaults to ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 pixel_head: dict,
                 semantic_head: Optional[dict] = None,
                 queue_len: int = 65536,
                 feat_dim: int = 128,
                 momentum: float = 0.001,
                 instance_weight: float = 0.5,
                 pixel_weight: float = 0.5,
                 semantic_weight: float = 0.5,
                 dense_start_iters: int = 0,
                 semantic_ramp: Tuple[int, int] = (0, 0),
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        if momentum > 0.5:
            raise ValueError(
                f'DSC momentum={momentum} looks like MoCo\'s convention (m=0.999); mmpretrain '
                f'uses key = (1 - momentum) * key + momentum * query, so set momentum=0.001 '
                f'(= 1 - 0.999) in the model config.')
        if semantic_ramp[1] < semantic_ramp[0]:
            raise ValueError(f'semantic_ramp={tuple(semantic_ramp)} ends before it starts; '
                             f'give (start, end) with end >= start.')
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.pixel_head = MODELS.build(pixel_head)
        self.semantic_head = MODELS.build(semantic_head) if semantic_head else None
        self.encoder_k = ExponentialMovingAverage(nn.Sequential(self.backbone, self.neck),
                                                  momentum)
        self.instance_queue = FeatureQueue(feat_dim, queue_len)
        self.pixel_queue = FeatureQueue(feat_dim, queue_len)
        self.instance_weight = instance_weight
        self.pixel_weight = pixel_weight
        self.semantic_weight = semantic_weight if self.semantic_head is not None else 0.
        self.dense_start_iters = dense_start_iters
        self.semantic_ramp = tuple(semantic_ramp)
        self.register_buffer('iter_count', torch.zeros((), dtype=torch.long))

    @staticmethod
    def _encode(backbone: nn.Module, neck: nn.Module, img: torch.Tensor) -> Encoded:
        """Backbone + neck on one view, L2-normalised outputs (see :class:`Encoded`)."""
        feat = backbone(img)  # tuple with the C5 map (B, D, S, S)
        global_emb, dense, pooled = neck(feat)
        c5 = feat[0].flatten(2)  # (B, D, S*S)
        return Encoded(
            backbone=F.normalize(c5, dim=1),
            global_emb=F.normalize(global_emb, dim=1),
            dense=F.normalize(dense, dim=1),
            pooled_dense=F.normalize(pooled, dim=1))

    @torch.no_grad()
    def _encode_key(self, img: torch.Tensor) -> Encoded:
        """Key encoder on one view, with shuffle-BN across processes."""
        img, idx_unshuffle = batch_shuffle_ddp(img)
        key = self._encode(*self.encoder_k.module, img)
        return Encoded(*(batch_unshuffle_ddp(t, idx_unshuffle) for t in key))

    def loss_weights(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Current (instance, pixel, semantic) weights from ``iter_count``, on the device."""
        it = self.iter_count.float()
        pixel = self.pixel_weight * (it >= self.dense_start_iters).float()
        # DenseCL's warm-up gives the instance term the pixel term's share (loss_lambda = 0).
        instance = self.instance_weight + (self.pixel_weight - pixel)
        start, end = self.semantic_ramp
        ramp = ((it - start) / (end - start)).clamp(0, 1) if end > start else \
            (it >= start).float()
        return instance, pixel, self.semantic_weight * ramp

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """One DSC step, in the order of the method's pseudo-code.

        Args:
            inputs (List[torch.Tensor]): Two augmented views. # 2 x (B, 3, H, W)
            data_samples (List[DataSample]): Unused (self-supervised).

        Returns:
            Dict[str, torch.Tensor]: weighted terms ``loss_instance``, ``loss_pixel``,
            ``loss_semantic`` (summed by mmengine) and logged-only values: ``raw_*`` (the
            unweighted terms), ``cluster_nonempty``, ``cluster_entropy``.
        """
        im_q, im_k = inputs[0], inputs[1]
        use_pixel = self.pixel_weight > 0
        use_semantic = self.semantic_weight > 0

        # 1. Encode the queries (view 1).
        query = self._encode(self.backbone, self.neck, im_q)

        # 2. Update the EMA key encoder, encode the keys (view 2; view 1 for k_s > 0).
        with torch.no_grad():
            self.encoder_k.update_parameters(nn.Sequential(self.backbone, self.neck))
            key = self._encode_key(im_k)
            key1 = self._encode_key(im_q) if use_pixel and self.pixel_head.uses_same_view \
                else None

        # 3. Instance term (MoCo v2).
        l_pos = torch.einsum('nc,nc->n', [query.global_emb, key.global_emb]).unsqueeze(-1)
        l_neg = torch.einsum('nc,ck->nk',
                             [query.global_emb, self.instance_queue.queue.clone().detach()])
        raw = dict(instance=self.head.loss(l_pos, l_neg))

        # 4. Pixel term with cross-view and same-view neighbours.
        if use_pixel or use_semantic:
            cross_idx, same_idx = self.pixel_head.find_neighbours(
                query.backbone, key.backbone, key1.backbone if key1 is not None else None)
        if use_pixel:
            raw['pixel'] = self.pixel_head.loss(
                query.dense, key.dense, cross_idx, self.pixel_queue.queue.clone(),
                key1.dense if key1 is not None else None, same_idx)

        # 5. Semantic term on the all-gathered key pixel pool.
        stats = {}
        if use_semantic:
            pool, match_rows = global_pixel_pool(key.dense, cross_idx[..., 0])
            queries = query.dense.permute(0, 2, 1).reshape(-1, query.dense.shape[1])
            semantic = self.semantic_head.loss(queries, pool, match_rows, self.iter_count)
            raw['semantic'] = semantic.pop('loss')
            stats = {k: v.detach() for k, v in semantic.items()}

        # 6. Weights from the schedules.
        w_inst, w_pix, w_sem = self.loss_weights()
        weights = dict(instance=w_inst, pixel=w_pix, semantic=w_sem)
        losses = {f'loss_{name}': weights[name] * value for name, value in raw.items()}
        losses.update({f'raw_{name}': value.detach() for name, value in raw.items()})
        losses.update(stats)

        # 7. Enqueue the global batch of keys and advance the counter.
        self.instance_queue.enqueue(key.global_emb)
        self.pixel_queue.enqueue(key.pooled_dense)
        self.iter_count += 1
        return losses
