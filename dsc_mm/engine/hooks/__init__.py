"""Training-loop hooks (reliability, DSC schedules, precise BN), registered in mmengine's root
HOOKS registry."""
from .dsc_schedule import (DenseCLEpochHook, DSCScheduleHook, ensure_schedule_hook,
                           steps_per_epoch)
from .non_finite import NonFiniteLossError, NonFiniteLossHook, non_finite_terms
from .precise_bn import PreciseBNBeforeEvalHook, update_bn_stats
from .rng_state import RNGStateHook, get_rng_state, set_rng_state

__all__ = [
    'DenseCLEpochHook', 'DSCScheduleHook', 'NonFiniteLossError', 'NonFiniteLossHook',
    'PreciseBNBeforeEvalHook', 'RNGStateHook', 'ensure_schedule_hook', 'get_rng_state',
    'non_finite_terms', 'set_rng_state', 'steps_per_epoch', 'update_bn_stats'
]
