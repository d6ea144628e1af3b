"""Training-loop extensions of dsc_mm (reliability hooks).

DSC's own schedules (DenseCL's pixel warm-up, the semantic ramp, frozen prototypes) are not
hooks: they read the model's ``iter_count`` buffer, so they are checkpointed with the model and
a resumed run continues them exactly, which a hook's Python attribute would not guarantee.
"""
from .hooks import *  # noqa: F401,F403
