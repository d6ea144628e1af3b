"""detectron2's ``TEST.PRECISE_BN`` for mmengine runners: recompute BN statistics before evaluating.

During training the BN running averages trail weights that change every step; detectron2's
transfer protocols (MoCo, DenseCL) therefore recompute them with the final weights over 200
training batches before each evaluation. mmpretrain's ``PreciseBNHook`` (1.2.0) does not fit
the mmdet protocol configs: it derives its iteration count from ``loader.batch_size``, which is
None under mmdet's ``AspectRatioBatchSampler`` (it stops the run with "unsupported operand
type(s) for *: 'NoneType' and 'int'"); it forwards in ``'tensor'`` mode, where a detector's RoI
head sees test-time proposals instead of the sampled training RoIs detectron2 normalises; and
it fires on a fixed iteration interval instead of wherever the train loop validates.
"""
import itertools
from typing import Iterable, Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def update_bn_stats(model: torch.nn.Module, batches: Iterable, num_iters: int) -> int:
    """Set every training-mode BN layer's running mean/var to the average of its batch
    statistics over ``num_iters`` batches, with the weights fixed.

    Each batch goes through the model's own training forward (``data_preprocessor(data,
    True)`` then ``mode='loss'``), as detectron2 runs the model in training mode: a detector's
    RoI head sees the sampled training RoIs. Across processes the averages are averaged (with
    SyncBN they are already equal).

    Args:
        model (nn.Module): An mmengine ``BaseModel`` (mmdet, mmseg, mmpretrain), possibly wrapped.
        batches (Iterable): Training data batches (what the train dataloader yields).
        num_iters (int): Batches to use (fewer if ``batches`` ends first).

    Returns:
        int: The number of batches used (0 when the model has no BN layer in training mode).
    """
    if is_model_wrapper(model):
        model = model.module
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.training]
    if not bns:
        return 0
    momenta = [bn.momentum for bn in bns]
    means = [torch.zeros_like(bn.running_mean) for bn in bns]
    variances = [torch.zeros_like(bn.running_var) for bn in bns]
    for bn in bns:
        bn.momentum = 1.0  # running stats := this batch's stats
    used = 0
    try:
        for data in itertools.islice(batches, num_iters):
            model(**model.data_preprocessor(data, True), mode='loss')
            used += 1
            for bn, mean, var in zip(bns, means, variances):
                mean += (bn.running_mean - mean) / used  # running average over batches
                var += (bn.running_var - var) / used
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
    if used:
        for bn, mean, var in zip(bns, means, variances):
            if get_world_size() > 1:
                all_reduce(mean, op='mean')
                all_reduce(var, op='mean')
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
    return used


@HOOKS.register_module()
class PreciseBNBeforeEvalHook(Hook):
    """Recompute BN statistics on training batches right before each validation and at the
    end of training (detectron2's ``TEST.PRECISE_BN``).

    It runs in ``after_train_iter`` / ``after_train_epoch`` of the step after which the train
    loop validates (or its last step), so the evaluation and the checkpoint saved at that
    step both carry the recomputed statistics: priority ``NORMAL``, after
    ``NonFiniteLossHook`` (``ABOVE_NORMAL``, stops a diverged run first) and before
    ``CheckpointHook`` (``VERY_LOW``).

    Args:
        num_iters (int): Training batches to average over. detectron2's default and the
            papers' setting is 200, at the protocol's total batch (e.g. 8 GPUs x 2).
    """

    priority = 'NORMAL'

    def __init__(self, num_iters: int = 200) -> None:
        if num_iters < 1:
            raise ValueError(f'PreciseBNBeforeEvalHook: num_iters must be >= 1, got {num_iters}.')
        self.num_iters = num_iters

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop) and self._validates_after(
                runner, runner.iter + 1, loop.max_iters):
            # The loop's own iterator: a second iterator over a dataloader with persistent
            # workers would reset the loop's.
            self._update(runner, loop.dataloader_iterator)

    def after_train_epoch(self, runner) -> None:
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop) and self._validates_after(
                runner, runner.epoch + 1, loop.max_epochs):
            self._update(runner, iter(loop.dataloader))

    def _validates_after(self, runner, step: int, last: int) -> bool:
        loop = runner.train_loop
        validates = runner.val_loop is not None and step >= loop.val_begin and \
            step % loop.val_interval == 0
        return validates or step == last

    def _update(self, runner, batches) -> None:
        used = update_bn_stats(runner.model, batches, self.num_iters)
        runner.logger.info(f'PreciseBNBeforeEvalHook: BN statistics recomputed over {used} '
                           f'training batches of {get_world_size()} process(es).')
