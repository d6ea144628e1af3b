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

from ..utils import FeatureQueue, at_least_float32, bounded_pixel_pool, float32_region

#: The paper's global key pool: 256 images x 7 x 7 C5 locations (8 GPUs x 32 at 224 px).
PAPER_POOL_PIXELS = 256 * 49


class Encoded(NamedTuple):
    """One view through backbone + DenseCLNeck, everything L2-normalised."""
    c5: torch.Tensor  # (B, D, S*S) backbone C5 vectors, for neighbour discovery
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

    Schedules read the counter ``iter_count`` of optimizer steps (a buffer, so resume restores
    it), advanced by each ``loss()`` call. Gradient accumulation is refused (:meth:`train_step`,
    ``DSCScheduleHook``): under it the EMA key encoder, the queues and this counter would move
    once per ``loss()`` call, not per optimizer step, so one ``loss()`` call is one step.

    - ``dense_start_iters``: DenseCL's warm-up (its ``DenseCLHook``). Before it the pixel weight
      is 0 and, exactly as DenseCL's ``loss_lambda=0`` does, the instance term takes the whole
      weight ``w_inst + w_pix``.
    - ``semantic_ramp=(start, end)``: beta is 0 before ``start`` and grows linearly to
      ``semantic_weight`` at ``end`` (k-means on random features is noise). While beta is 0 the
      semantic term is not computed at all (no clustering, no logits; decided on the host).
    - ``dense_start_epochs`` / ``semantic_ramp_epochs`` (and the PM head's
      ``freeze_prototypes_epochs``) give the same in epochs; ``DSCScheduleHook`` turns them into
      optimizer steps at run start from the real dataset size, batch size, world size and
      gradient accumulation, so a schedule means the same at 8 and at 256 GPUs. The steps per
      epoch are kept in the buffer ``steps_per_epoch``: a run resumed with another world size,
      batch or accumulation re-expresses ``iter_count`` in its own steps, so the epochs done
      (and the schedules) carry over.

    The semantic term contrasts with at most ``max_contrast_pixels`` key pixels (the paper's
    global pool of 12,544 by default): at or under it the whole all-gathered pool, exactly as
    the paper; above it exactly that many (the rank's own pixels and a sample of the others'),
    clustered on a sample of about as many pixels drawn from every rank and shared by all
    (:func:`~dsc_mm.models.utils.bounded_pixel_pool`), so memory, clustering time and the
    loss's scale do not grow with the number of GPUs.

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
        dense_start_iters (int): Pixel-term warm-up in optimizer steps. Defaults to 0.
        semantic_ramp (Tuple[int, int]): (start, end) optimizer steps of the beta ramp.
            Defaults to (0, 0), i.e. full beta from the start.
        dense_start_epochs (float, optional): The warm-up in epochs, replacing
            ``dense_start_iters`` at run start. Defaults to None.
        semantic_ramp_epochs (Tuple[float, float], optional): The ramp in epochs, replacing
            ``semantic_ramp`` at run start. Defaults to None.
        max_contrast_pixels (int, optional): Cap on the semantic term's contrast set (global
            key pixels); None: no cap. Defaults to 12544 (256 images x 49).
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
                 dense_start_epochs: Optional[float] = None,
                 semantic_ramp_epochs: Optional[Tuple[float, float]] = None,
                 max_contrast_pixels: Optional[int] = PAPER_POOL_PIXELS,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        if momentum > 0.5:
            raise ValueError(
                f'DSC momentum={momentum} looks like MoCo\'s convention (m=0.999); mmpretrain '
                f'uses key = (1 - momentum) * key + momentum * query, so set momentum=0.001 '
                f'(= 1 - 0.999) in the model config.')
        for name, ramp in (('semantic_ramp', semantic_ramp),
                           ('semantic_ramp_epochs', semantic_ramp_epochs)):
            if ramp is not None and ramp[1] < ramp[0]:
                raise ValueError(f'{name}={tuple(ramp)} ends before it starts; give '
                                 f'(start, end) with end >= start.')
        if dense_start_epochs is not None and dense_start_iters:
            raise ValueError(f'DSC got both dense_start_iters={dense_start_iters} and '
                             f'dense_start_epochs={dense_start_epochs}; give only one in the '
                             f'model config.')
        if semantic_ramp_epochs is not None and tuple(semantic_ramp) != (0, 0):
            raise ValueError(f'DSC got both semantic_ramp={tuple(semantic_ramp)} and '
                             f'semantic_ramp_epochs={tuple(semantic_ramp_epochs)}; give only one '
                             f'in the model config.')
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
        self.dense_start_epochs = dense_start_epochs
        self.semantic_ramp_epochs = semantic_ramp_epochs
        self.max_contrast_pixels = max_contrast_pixels
        least = getattr(self.semantic_head, 'min_cluster_pixels', 0)
        if max_contrast_pixels is not None and max_contrast_pixels < least:
            raise ValueError(
                f'DSC max_contrast_pixels={max_contrast_pixels} is below the {least} pixels '
                f'the semantic head needs to cluster (num_classes x min_pixels_per_class); '
                f'raise max_contrast_pixels or lower num_classes in the model config.')
        self.schedules_resolved = not self._has_epoch_schedules()
        self.register_buffer('iter_count', torch.zeros((), dtype=torch.long))
        # The optimizer steps per epoch iter_count counts in (0: never resolved by a run).
        self.register_buffer('steps_per_epoch', torch.zeros((), dtype=torch.float64))
        # Host copy of iter_count for host-side decisions (skip the semantic term, the
        # sampling seed) without a device sync per step; None: read the buffer once.
        self._host_iter: Optional[int] = None

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._host_iter = None

    def _has_epoch_schedules(self) -> bool:
        head_epochs = getattr(self.semantic_head, 'freeze_prototypes_epochs', None)
        return any(v is not None
                   for v in (self.dense_start_epochs, self.semantic_ramp_epochs, head_epochs))

    def resolve_schedules(self, steps_per_epoch: float) -> None:
        """Turn the schedules given in epochs into optimizer steps.

        Called at run start by ``DSCScheduleHook`` (or by hand when the model is used alone).
        When the model holds a counter of a run with another number of steps per epoch (a
        resume at another world size or batch), the counter is rescaled to the new steps so
        that it stands for the same number of epochs.

        Args:
            steps_per_epoch (float): Optimizer steps per epoch: dataset images / (batch size
                x world size x gradient accumulation).
        """
        previous = float(self.steps_per_epoch)
        if previous > 0 and previous != steps_per_epoch:
            self.set_iter(round(self.host_iter() * steps_per_epoch / previous))
        self.steps_per_epoch.fill_(steps_per_epoch)
        if self.dense_start_epochs is not None:
            self.dense_start_iters = round(self.dense_start_epochs * steps_per_epoch)
        if self.semantic_ramp_epochs is not None:
            self.semantic_ramp = tuple(round(e * steps_per_epoch)
                                       for e in self.semantic_ramp_epochs)
        if hasattr(self.semantic_head, 'resolve_schedules'):
            self.semantic_head.resolve_schedules(steps_per_epoch)
        self.schedules_resolved = True

    def host_iter(self) -> int:
        """``iter_count`` on the host (one device read after construction or loading)."""
        if self._host_iter is None:
            self._host_iter = int(self.iter_count)
        return self._host_iter

    def advance_iter(self) -> None:
        """Count one optimizer step (device buffer and host copy)."""
        self.iter_count += 1
        if self._host_iter is not None:
            self._host_iter += 1

    def set_iter(self, value: int) -> None:
        """Set the step counter by hand (benchmarks, tests), keeping the host copy in step."""
        self.iter_count.fill_(value)
        self._host_iter = value

    def semantic_on(self, it: int) -> bool:
        """Whether beta > 0 at step ``it`` (the host twin of :meth:`loss_weights`)."""
        if self.semantic_weight <= 0:
            return False
        start, end = self.semantic_ramp
        return it > start if end > start else it >= start

    @staticmethod
    def _encode(backbone: nn.Module, neck: nn.Module, img: torch.Tensor) -> Encoded:
        """Backbone + neck on one view, L2-normalised outputs (see :class:`Encoded`)."""
        feat = backbone(img)  # tuple with the C5 map (B, D, S, S)
        global_emb, dense, pooled = neck(feat)
        c5 = feat[0].flatten(2)  # (B, D, S*S)
        return Encoded(
            c5=F.normalize(c5, dim=1),
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
            ``loss_semantic`` (summed by mmengine; a term whose weight is 0 on this step is
            absent) and logged-only values: ``raw_*`` (the unweighted terms),
            ``cluster_nonempty``, ``cluster_entropy``.
        """
        if not self.schedules_resolved:
            raise RuntimeError(
                'DSC schedules are given in epochs but were never turned into iterations; add '
                "dict(type='DSCScheduleHook') to custom_hooks in the config (the DSC configs "
                'have it) or call model.resolve_schedules(steps_per_epoch) first.')
        im_q, im_k = inputs[0], inputs[1]
        step = self.host_iter()
        use_pixel = self.pixel_weight > 0
        use_semantic = self.semantic_on(step)

        # 1. Encode the queries (view 1).
        query = self._encode(self.backbone, self.neck, im_q)

        # 2. Update the EMA key encoder, encode the keys (view 2; view 1 for k_s > 0).
        with torch.no_grad():
            self.encoder_k.update_parameters(nn.Sequential(self.backbone, self.neck))
            key = self._encode_key(im_k)
            key1 = self._encode_key(im_q) if use_pixel and self.pixel_head.uses_same_view \
                else None

        # 3. Neighbour discovery on the C5 maps, shared by the pixel term (k_x cross-view and
        #    k_s same-view neighbours) and the semantic term (the top-1 cross-view match).
        if use_pixel or use_semantic:
            cross_idx, same_idx = self.pixel_head.find_neighbours(
                query.c5, key.c5, key1.c5 if key1 is not None else None)

        # 4. Instance term (MoCo v2), float32 under AMP: its log-sum-exp runs over the queue.
        with float32_region(query.global_emb.device):
            q_emb, k_emb = at_least_float32(query.global_emb), at_least_float32(key.global_emb)
            l_pos = torch.einsum('nc,nc->n', [q_emb, k_emb]).unsqueeze(-1)
            l_neg = torch.einsum('nc,ck->nk', [q_emb, self.instance_queue.queue.clone().detach()])
            raw = dict(instance=self.head.loss(l_pos, l_neg))

        # 5. Pixel term with the cross-view and same-view neighbours.
        if use_pixel:
            raw['pixel'] = self.pixel_head.loss(
                query.dense, key.dense, cross_idx, self.pixel_queue.queue.clone(),
                key1.dense if key1 is not None else None, same_idx)

        # 6. Semantic term on the key pixels of the global batch (bounded above the cap).
        stats = {}
        if use_semantic:
            contrast = bounded_pixel_pool(key.dense, cross_idx[..., 0],
                                          self.max_contrast_pixels, seed=step)
            queries = query.dense.permute(0, 2, 1).reshape(-1, query.dense.shape[1])
            semantic = self.semantic_head.loss(queries, contrast.pixels, contrast.match_rows,
                                               self.iter_count, contrast.cluster_pixels)
            raw['semantic'] = semantic.pop('loss')
            stats = {k: v.detach() for k, v in semantic.items()}

        # 7. Weights from the schedules.
        w_inst, w_pix, w_sem = self.loss_weights()
        weights = dict(instance=w_inst, pixel=w_pix, semantic=w_sem)
        losses = {f'loss_{name}': weights[name] * value for name, value in raw.items()}
        losses.update({f'raw_{name}': value.detach() for name, value in raw.items()})
        losses.update(stats)

        # 8. Enqueue the global batch of keys and advance the counter.
        self.instance_queue.enqueue(key.global_emb)
        self.pixel_queue.enqueue(key.pooled_dense)
        self.advance_iter()
        return losses

    def train_step(self, data, optim_wrapper) -> Dict[str, torch.Tensor]:
        """mmengine's train step, refusing gradient accumulation (:meth:`refuse_accumulation`)."""
        self.refuse_accumulation(optim_wrapper)
        return super().train_step(data, optim_wrapper)

    @staticmethod
    def refuse_accumulation(optim_wrapper) -> None:
        """Raise one clear error when ``optim_wrapper`` accumulates gradients.

        Under accumulation every ``loss()`` call would move the EMA key encoder, the queues and
        the schedule counter, so the momentum, the queue's age and the schedules would change
        with the number of accumulated iterations.
        """
        # mmengine's OptimWrapper keeps accumulative_counts only as this attribute (no getter).
        counts = getattr(optim_wrapper, '_accumulative_counts', 1)
        if counts > 1:
            raise ValueError(
                f'DSC does not support gradient accumulation (optim_wrapper.accumulative_counts'
                f'={counts}): its EMA key encoder, queues and schedules advance once per loss() '
                f'call; remove accumulative_counts and reach the total batch with more processes '
                f'or a larger per-process batch.')
