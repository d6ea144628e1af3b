"""dsc_mm: Dense Semantic Contrast (Li et al., ACM MM 2021) for the OpenMMLab stack.

Importing the package applies the stack workarounds of :mod:`dsc_mm.compat` and registers
dsc_mm's modules in the OpenMMLab registries (configs do it with
``custom_imports = dict(imports=['dsc_mm'])``).
"""
import warnings

# mmengine imports pkg_resources, which setuptools 80 flags as deprecated on every start; the
# stack needs it (requirements.txt pins setuptools<81), so the warning is noise for users.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

from . import compat  # noqa: E402
from .version import __version__  # noqa: E402

compat.register_safe_globals()
compat.make_checkpoint_writes_atomic()

from . import transfer  # noqa: E402  (registers PretrainedCheckHook)
from . import datasets, engine, models  # noqa: E402,F401  (registries; hooks of dsc_mm.engine)

__all__ = ['__version__']
