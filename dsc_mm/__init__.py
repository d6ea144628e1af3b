"""dsc_mm: Dense Semantic Contrast (Li et al., ACM MM 2021) for the OpenMMLab stack.

Importing the package applies the stack workarounds of :mod:`dsc_mm.compat` and registers
dsc_mm's modules in the OpenMMLab registries (configs do it with
``custom_imports = dict(imports=['dsc_mm'])``).
"""
from . import compat
from .version import __version__

compat.register_safe_globals()

from . import transfer  # noqa: E402  (registers PretrainedCheckHook)

__all__ = ['__version__']
