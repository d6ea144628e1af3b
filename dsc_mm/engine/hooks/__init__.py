"""Training-loop hooks for reliability, registered in mmengine's root HOOKS registry."""
from .dsc_schedule import DSCScheduleHook, steps_per_epoch
from .non_finite import NonFiniteLossError, NonFiniteLossHook, non_finite_terms
from .rng_state import RNGStateHook, get_rng_state, set_rng_state

__all__ = [
    'NonFiniteLossError', 'NonFiniteLossHook', 'RNGStateHook', 'get_rng_state',
    'non_finite_terms', 'set_rng_state'
]
