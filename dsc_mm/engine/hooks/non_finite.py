"""Stop training at the first non-finite loss, before any checkpoint of the broken state."""
import math
from typing import List, Optional

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; the message names the term and the iteration."""


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


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` as soon as a loss term is NaN or infinite.

    The optimizer has already stepped on the bad loss when ``after_train_iter`` runs, so the
    in-memory weights may be broken; the hook runs before ``CheckpointHook`` (priority
    ``ABOVE_NORMAL`` < ``VERY_LOW``) and stops the run, so no checkpoint of that state is
    written and ``last_checkpoint`` keeps naming the last good one. All processes agree
    (one all-reduce of a flag, a no-op on one process), so a NaN on one rank stops every
    rank instead of leaving the others waiting in the next collective.

    ``tools/train.py`` adds it to every config (see ``dsc_mm.apis.checks``); a config that
    lists it in ``custom_hooks`` keeps its own settings.

    Args:
        interval (int): Check every ``interval`` iterations. Each check reads the losses on
            the host (one device sync), which the logger does anyway at its interval.
            Defaults to 1.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, interval: int = 1) -> None:
        if interval < 1:
            raise ValueError(f'NonFiniteLossHook: interval={interval} must be >= 1.')
        self.interval = interval

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        bad = non_finite_terms(outputs)
        flag = torch.tensor(float(bool(bad)))
        all_reduce(flag)  # sum over processes
        if not flag.item():
            return
        iteration = runner.iter + 1  # as logged by LoggerHook
        what = ', '.join(bad) if bad else 'a loss term is not finite on another process'
        last = runner.message_hub.get_info('last_ckpt')
        resume = (f'the last good checkpoint {last} was kept' if last else
                  'no checkpoint had been written yet')
        raise NonFiniteLossError(
            f'{what} at iteration {iteration}; training stopped before saving this state '
            f'({resume}): lower the learning rate or check the inputs, then resume with '
            f'tools/train.py CONFIG --resume.')
