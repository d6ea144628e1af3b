"""Run DSC's schedules in optimizer steps, resolved from epochs at run start."""
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


def _model(runner):
    """The runner's model without its DDP wrapper (where the schedules live)."""
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def _runner_steps_per_epoch(runner) -> float:
    """:func:`steps_per_epoch` of the runner's train loader at the current world size."""
    loader = runner.train_dataloader
    return steps_per_epoch(len(loader.dataset), loader.batch_size, get_world_size())


def ensure_schedule_hook(cfg) -> None:
    """Add ``DSCScheduleHook`` to a DSC config whose ``custom_hooks`` lack it (in place).

    mmengine replaces lists when a config inherits, so a derived config that sets its own
    ``custom_hooks`` would silently drop the hook the DSC bases add.
    """
    model_type = str(cfg.get('model', {}).get('type', ''))
    hooks = cfg.get('custom_hooks') or []
    if model_type.split('.')[-1] == 'DSC' and not any(
            str(h.get('type', '')).split('.')[-1] == 'DSCScheduleHook' for h in hooks):
        cfg.custom_hooks = list(hooks) + [dict(type='DSCScheduleHook')]


@HOOKS.register_module()
class DSCScheduleHook(Hook):
    """Resolve DSC's epoch schedules at run start (after a resume has loaded the counter).

    ``before_train``: the model's ``dense_start_epochs``, ``semantic_ramp_epochs`` and the PM
    head's ``freeze_prototypes_epochs`` become optimizer steps (:func:`steps_per_epoch` of the
    real train dataloader and world size); a resumed counter of another world size or batch is
    re-expressed in the new steps (``DSC.resolve_schedules``). Gradient accumulation is refused
    here too, since DDP's ``train_step`` bypasses the model's. ``dsc_mm.apis.build_runner``
    adds the hook to every DSC config that lacks it (:func:`ensure_schedule_hook`).

    A model without DSC's schedules (no ``resolve_schedules``) is left alone.
    """

    priority = 'NORMAL'

    def before_train(self, runner) -> None:
        model = _model(runner)
        if not hasattr(model, 'resolve_schedules'):
            return
        model.refuse_accumulation(runner.optim_wrapper)
        steps = _runner_steps_per_epoch(runner)
        model.resolve_schedules(steps)
        runner.logger.info(
            f'DSCScheduleHook: {steps:.1f} optimizer steps per epoch, at step '
            f'{model.host_iter()}; pixel term from step {model.dense_start_iters}, semantic '
            f'ramp {model.semantic_ramp}, prototype freeze until '
            f'{getattr(model.semantic_head, "freeze_prototypes_iters", "-")}.')


@HOOKS.register_module()
class DenseCLEpochHook(Hook):
    """mmpretrain's ``DenseCLHook`` with its warm-up in epochs, as DSC's ``dense_start_epochs``.

    ``loss_lambda`` is 0 for the first ``start_epochs`` epochs, turned into iterations at run
    start (:func:`steps_per_epoch`), so the DenseCL baseline warms up for the same epochs as
    DSC at any world size. The iterations per epoch go into the checkpoint's ``meta``; a run
    resumed with another world size or batch counts the remaining warm-up epochs in its own
    iterations (``runner.iter`` itself is the old run's).

    Args:
        start_epochs (float): Epochs with ``loss_lambda = 0``.
    """

    priority = 'NORMAL'

    def __init__(self, start_epochs: float) -> None:
        self.start_epochs = start_epochs
        self.start_iters = 0
        self._resumed = None  # (iteration, iterations per epoch) of a resumed checkpoint

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta', {})
        if 'densecl_iters_per_epoch' in meta:
            self._resumed = (meta.get('iter', 0), meta['densecl_iters_per_epoch'])

    def before_train(self, runner) -> None:
        model = _model(runner)
        self.loss_lambda = model.loss_lambda
        self.iters_per_epoch = _runner_steps_per_epoch(runner)
        start_iter, epochs_done = 0, 0.
        if self._resumed is not None:
            start_iter = self._resumed[0]
            epochs_done = start_iter / self._resumed[1]
        self.start_iters = start_iter + round(
            (self.start_epochs - epochs_done) * self.iters_per_epoch)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = _model(runner)
        model.loss_lambda = self.loss_lambda if runner.iter >= self.start_iters else 0.

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['densecl_iters_per_epoch'] = self.iters_per_epoch
