"""Run DSC's schedules in optimizer steps, resolved from epochs at run start."""
from typing import Optional

from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def steps_per_epoch(num_images: int, batch_size: int, world_size: int,
                    accumulative_counts: int = 1) -> float:
    """Optimizer steps in one epoch: every image of the dataset seen once, in global batches.

    Computed from the dataset rather than ``len(dataloader)``: with mmengine's
    ``InfiniteSampler`` (the iteration-based configs) the loader's length is the whole
    dataset per process, blind to the world size.

    Args:
        num_images (int): Images in the training set.
        batch_size (int): Images per process and iteration.
        world_size (int): Number of processes.
        accumulative_counts (int): Iterations per optimizer step (gradient accumulation).
    """
    return num_images / (batch_size * world_size * accumulative_counts)


@HOOKS.register_module()
class DSCScheduleHook(Hook):
    """Resolve DSC's epoch schedules at run start; count its optimizer steps.

    - ``before_train``: the model's ``dense_start_epochs``, ``semantic_ramp_epochs`` and the
      PM head's ``freeze_prototypes_epochs`` become optimizer steps (:func:`steps_per_epoch`
      of the real train dataloader, world size and ``optim_wrapper.accumulative_counts``).
    - ``after_train_iter``: ``iter_count`` advances once per OPTIMIZER step, so gradient
      accumulation runs the schedules at the same pace per image. It runs before the
      checkpoint hook (priority NORMAL), so a checkpoint holds the counter of its iteration.

    A model without DSC's schedules (no ``resolve_schedules``) is left alone.
    """

    priority = 'NORMAL'

    @staticmethod
    def _dsc(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        return model if hasattr(model, 'resolve_schedules') else None

    def before_train(self, runner) -> None:
        model = self._dsc(runner)
        if model is None:
            return
        loader = runner.train_dataloader
        # mmengine's OptimWrapper keeps accumulative_counts only as this attribute (no getter).
        accumulate = getattr(runner.optim_wrapper, '_accumulative_counts', 1)
        steps = steps_per_epoch(len(loader.dataset), loader.batch_size, get_world_size(),
                                accumulate)
        model.resolve_schedules(steps)
        model.counts_loss_calls = False
        runner.logger.info(
            f'DSCScheduleHook: {steps:.1f} optimizer steps per epoch; pixel term from step '
            f'{model.dense_start_iters}, semantic ramp {model.semantic_ramp}, prototype freeze '
            f'until {getattr(model.semantic_head, "freeze_prototypes_iters", "-")}.')

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        model = self._dsc(runner)
        if model is None:
            return
        should_update = getattr(runner.optim_wrapper, 'should_update', None)
        # After update_params, should_update() tells whether this iteration stepped.
        if should_update is None or should_update():
            model.advance_iter()
