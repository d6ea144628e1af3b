"""Save the random generators in checkpoints so that a resumed run repeats the original exactly.

mmengine 0.10.7 re-seeds on resume (``Runner.resume`` only compares ``meta['seed']``), so the
resumed run starts its torch / numpy / ``random`` generators from the seed while the original
run had advanced them through k augmentation pipelines and k model steps (DSC's k-means++ seeds
and shuffle-BN permutations use the global torch generator). Data augmentation and the model
then diverge from the first resumed iteration. This hook stores every process's generator
states in the checkpoint and puts them back right before the first resumed batch is loaded.
"""
import random
from typing import List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS

RNG_KEY = 'rng_states'


def get_rng_state() -> dict:
    """This process's torch (CPU and CUDA), numpy and ``random`` generator states.

    The numpy key array is stored as an int64 tensor, so the checkpoint loads with
    ``torch.load(weights_only=True)`` and the allowlist of :mod:`dsc_mm.compat`.
    """
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=(name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
               float(gauss)),
        random=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    torch.set_rng_state(state['torch'])
    name, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state['random']
    random.setstate((version, tuple(internal), gauss_next))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


class _RestoreAfterSkip:
    """Wraps the loop's data iterator; restores the generators before batch ``skip + 1``.

    ``IterBasedTrainLoop.run`` replays the first ``skip`` batches after ``before_train_epoch``
    (so the sampler continues where it was) and only then loads the first new batch; no hook
    runs in between, hence the wrapper. It removes itself after the restore.
    """

    def __init__(self, loop, skip: int, state: dict) -> None:
        self.loop, self.inner, self.skip, self.state = loop, loop.dataloader_iterator, skip, state

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip == 0:
            set_rng_state(self.state)
            self.loop.dataloader_iterator = self.inner
        else:
            self.skip -= 1
        return next(self.inner)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Checkpoint the random generators of every process; restore them on resume.

    - Capture: in ``after_train_iter`` (``after_train_epoch`` for epoch-based runs) of an
      iteration at which ``CheckpointHook`` saves, every process's state is gathered (one
      ``all_gather_object``, only at save iterations) and written by rank 0 under
      ``checkpoint['meta']['rng_states']`` (a list indexed by rank). The priority ``LOW``
      runs it after the other hooks of that iteration and before ``CheckpointHook``.
    - Restore: on resume, iteration-based runs restore right before the first new batch
      (after mmengine has replayed the consumed batches); epoch-based runs at the start of the
      resumed epoch. A ``load_from`` (fine-tuning) never restores.
    - Validation is made RNG-neutral (generators saved before and restored after it), so the
      training stream does not depend on when validation ran, and a resumed run matches
      even when the original validated at the checkpoint iteration.

    Registered in mmengine's root HOOKS registry, so every scope finds it; ``tools/train.py``
    adds it to every config (see ``dsc_mm.apis.checks``).
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self._captured: Optional[List[dict]] = None
        self._resumed: Optional[dict] = None
        self._val_state: Optional[dict] = None

    # -- capture -----------------------------------------------------------------------
    @staticmethod
    def _checkpoint_hooks(runner) -> List[CheckpointHook]:
        return [h for h in runner.hooks if isinstance(h, CheckpointHook)]

    def _capture(self) -> None:
        state = get_rng_state()
        self._captured = all_gather_object(state) if get_world_size() > 1 else [state]

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        # CheckpointHook.after_train_iter's own condition, so non-saving iterations cost
        # nothing.
        for hook in self._checkpoint_hooks(runner):
            if hook.by_epoch:
                continue
            if hook.every_n_train_iters(runner, hook.interval, hook.save_begin) or (
                    hook.save_last and hook.is_last_train_iter(runner)):
                self._capture()
                return

    def after_train_epoch(self, runner) -> None:
        for hook in self._checkpoint_hooks(runner):
            if hook.by_epoch and (hook.every_n_epochs(runner, hook.interval, hook.save_begin)
                                  or (hook.save_last and hook.is_last_train_epoch(runner))):
                self._capture()
                return

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # Saves outside the periodic schedule capture here, on rank 0 only; a best checkpoint
        # saved during validation gets the state from before validation (which is restored
        # after it).
        states = self._captured or [self._val_state or get_rng_state()]
        checkpoint.setdefault('meta', {})[RNG_KEY] = states
        self._captured = None

    # -- restore -----------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = (checkpoint.get('meta') or {}).get(RNG_KEY)
        if not states:
            self._resumed = None
            return
        if len(states) != get_world_size():
            runner.logger.warning(
                f'RNGStateHook: the checkpoint holds the random states of {len(states)} '
                f'processes but this run has {get_world_size()}; the generators start from '
                f'the seed, so the resumed run is not bit-identical to an uninterrupted one.')
            self._resumed = None
            return
        self._resumed = states[get_rank()]

    def before_train_epoch(self, runner) -> None:
        state, self._resumed = self._resumed, None
        loop = runner.train_loop
        if state is None or (runner.iter == 0 and runner.epoch == 0):
            return  # not a resume (load_from restores weights only)
        if hasattr(loop, 'dataloader_iterator'):
            loop.dataloader_iterator = _RestoreAfterSkip(loop, loop.iter, state)
        else:
            set_rng_state(state)

    def before_val(self, runner) -> None:
        self._val_state = get_rng_state()

    def after_val(self, runner) -> None:
        if self._val_state is not None:
            set_rng_state(self._val_state)
            self._val_state = None
