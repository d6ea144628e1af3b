"""DSC models registered in mmpretrain's MODELS registry."""
from .heads import *  # noqa: F401,F403
from .selfsup import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403
