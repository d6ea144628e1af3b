"""Training-loop extensions of dsc_mm (reliability, DSC schedules, precise BN hooks).

DSC's schedules (DenseCL's pixel warm-up, the semantic ramp, frozen prototypes) read the
model's ``iter_count`` buffer, so they are checkpointed with the model and a resumed run
continues them exactly. :class:`DSCScheduleHook` only turns the configs' epochs into optimizer
steps at run start (re-expressing a resumed counter when the steps per epoch changed).
"""
from .hooks import *  # noqa: F401,F403
