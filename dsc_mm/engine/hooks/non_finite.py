"""Stop training at the first non-finite loss or divergent update, before any checkpoint of it."""
import math
from typing import List, Optional, Sequence

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """Training diverged (a NaN/inf loss term or state, or an update larger than allowed); the
    message names what, the iteration and the checkpoint to resume from."""


def non_finite_terms(outputs: Optional[dict], prefix: str = 'loss') -> List[str]:
    """The ``loss*`` entries of a ``train_step`` output that are NaN or infinite.

    Args:
        outputs (dict, optional): The log variables returned by ``model.train_step``: the
            total ``loss`` and each term, as tensors or floats.
        prefix (str): Only entries whose name starts with it are checked (logged statistics
            such as a cluster entropy are not losses).

    Returns:
        list[str]: ``'name is nan'`` / ``'name is inf'`` for each bad term; the total
        ``loss`` is listed only when no single term explains it (it is bad whenever a term is).
    """
    bad = []
    for name, value in (outputs or {}).items():
        if not name.startswith(prefix):
            continue
        if isinstance(value, torch.Tensor):
            value = value.detach().float()
            if bool(torch.isfinite(value).all()):
                continue
            value = float('nan') if bool(torch.isnan(value).any()) else float('inf')
        elif not isinstance(value, (int, float)) or math.isfinite(value):
            continue
        bad.append(f'{name} is {"nan" if math.isnan(value) else "inf"}')
    terms = [text for text in bad if not text.startswith(f'{prefix} ')]
    return terms or bad


def _norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of all ``tensors`` taken as one vector (NaN/inf if any entry is).

    Accumulated in float64: the squares of diverged float32 weights (~1e30) overflow float32,
    which would report finite weights as infinite.
    """
    if not tensors:
        return torch.zeros((), dtype=torch.float64)
    return torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(t.detach(), dtype=torch.float64) for t in tensors]))


def update_ratio(before: Sequence[torch.Tensor], after: Sequence[torch.Tensor]) -> float:
    """``||after - before|| / ||before||`` over all tensors taken as one vector.

    Healthy SGD/AdamW steps change a ResNet's weights by about 1e-4 to 1e-2 of their norm; a
    diverging step (learning rate far too high, exploding gradient) by orders of magnitude
    more. NaN when ``after`` is not finite; 0 when ``before`` is all zeros and nothing moved.
    """
    change = _norm([a - b for a, b in zip(after, before)])
    size = _norm(before)
    return float(change / size) if float(size) > 0 else (0. if float(change) == 0 else math.inf)


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` as soon as training diverges, before it is saved.

    Checked after every ``interval``-th iteration: the ``loss*`` outputs are finite; the
    step's update of the trainable parameters is at most ``max_update_ratio`` times their
    norm (this also requires the new parameters to be finite); the optimizer state (momentum,
    Adam moments) is finite. A finite loss does not prove a sane step: with a learning rate
    of 1e30 the first loss is finite and the update sends the weights to 1e30, which a
    checkpoint would then keep as "good".

    The optimizer has already stepped when ``after_train_iter`` runs, so the in-memory state
    may be broken; the hook runs before ``CheckpointHook`` (priority ``ABOVE_NORMAL`` <
    ``VERY_LOW``) and stops the run, so no checkpoint of that state is written and
    ``last_checkpoint`` keeps naming the last good one. All processes agree (one all-reduce
    of two flags, a no-op on one process), so a problem on one rank stops every rank instead
    of leaving the others waiting in the next collective.

    ``tools/train.py`` adds it to every config (see ``dsc_mm.apis.checks``); a config that
    lists it in ``custom_hooks`` keeps its own settings.

    Args:
        interval (int): Check every ``interval`` iterations. Each check reads the losses on
            the host (one device sync), which the logger does anyway at its interval.
            Defaults to 1.
        max_update_ratio (float, optional): Largest allowed ``||W_after - W_before|| /
            ||W_before||`` of one checked iteration, over all trainable parameters as one
            vector. Costs one copy of the trainable parameters per checked iteration.
            Defaults to 1.0 (an update as large as the weights themselves). None: only the
            losses and the finiteness of the parameters and optimizer state are checked.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, interval: int = 1, max_update_ratio: Optional[float] = 1.0) -> None:
        if interval < 1:
            raise ValueError(f'NonFiniteLossHook: interval={interval} must be >= 1.')
        if max_update_ratio is not None and not max_update_ratio > 0:
            raise ValueError(f'NonFiniteLossHook: max_update_ratio={max_update_ratio} must be '
                             f'> 0 (or None to skip the update check).')
        self.interval = interval
        self.max_update_ratio = max_update_ratio
        self._before: Optional[List[torch.Tensor]] = None

    @staticmethod
    def _params(runner) -> List[torch.Tensor]:
        return [p for p in runner.model.parameters() if p.requires_grad]

    @staticmethod
    def _optimizer_state(runner) -> List[torch.Tensor]:
        state = runner.optim_wrapper.optimizer.state.values()
        return [t for entry in state for t in entry.values()
                if isinstance(t, torch.Tensor) and t.is_floating_point()]

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._before = None
        if self.max_update_ratio is not None and self.every_n_train_iters(runner, self.interval):
            self._before = [p.detach().clone() for p in self._params(runner)]

    def _state_problem(self, runner) -> Optional[str]:
        """What is wrong with the parameters or optimizer state after this step, or None."""
        params = self._params(runner)
        if self._before is not None:
            ratio = update_ratio(self._before, params)
            self._before = None
            if not math.isfinite(ratio):
                return 'the parameters are not finite after the optimizer step'
            if ratio > self.max_update_ratio:
                return (f'the optimizer step changed the parameters by {ratio:.3g} times their '
                        f'norm (NonFiniteLossHook max_update_ratio={self.max_update_ratio:g})')
        elif not math.isfinite(float(_norm(params))):
            return 'the parameters are not finite after the optimizer step'
        if not math.isfinite(float(_norm(self._optimizer_state(runner)))):
            return 'the optimizer state (momentum/moments) is not finite'
        return None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        bad = non_finite_terms(outputs)
        problem = None if bad else self._state_problem(runner)
        flags = torch.tensor([float(bool(bad)), float(problem is not None)])
        all_reduce(flags)  # sum over processes
        if not flags.any():
            return
        iteration = runner.iter + 1  # as logged by LoggerHook
        if bad:
            what = ', '.join(bad)
        elif problem:
            what = problem
        else:
            what = ('a loss term is not finite' if flags[0] else 'the update diverged') + \
                ' on another process'
        last = runner.message_hub.get_info('last_ckpt')
        if last:
            resume = (f'the last good checkpoint {last} was kept): resume from it with '
                      f'tools/train.py CONFIG --resume; if it diverges again, lower the '
                      f'learning rate and start again (a resume restores the learning rate '
                      f'saved in the checkpoint)')
        else:
            resume = ('no checkpoint had been written yet): lower the learning rate or check '
                      'the inputs, then start again')
        raise NonFiniteLossError(
            f'{what} at iteration {iteration}; training stopped before saving this state '
            f'({resume}.')
