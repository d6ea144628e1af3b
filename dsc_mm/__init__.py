"""dsc_mm: Dense Semantic Contrast (Li et al., ACM MM 2021) for the OpenMMLab stack.

Importing the package applies the stack workarounds of :mod:`dsc_mm.compat` and registers
dsc_mm's modules in the OpenMMLab registries (configs do it with
``custom_imports = dict(imports=['dsc_mm'])``). Modules that subclass mmseg or mmdet-side
classes (:mod:`dsc_mm.models`, ``CamVidDataset``) are imported by their registry on its first
lookup, not at start-up (:func:`dsc_mm.utils.registry.import_on_first_lookup`).
"""
import importlib
import warnings

# mmengine imports pkg_resources, which setuptools 80 flags as deprecated on every start; the
# stack needs it (requirements.txt pins setuptools<81), so the warning is noise for users.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

from . import compat  # noqa: E402
from .version import __version__  # noqa: E402

compat.register_safe_globals()
compat.make_checkpoint_writes_atomic()
compat.format_each_config_once()

from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS  # noqa: E402

from . import transfer  # noqa: E402  (registers PretrainedCheckHook)
from . import datasets, engine  # noqa: E402,F401  (registries; hooks of dsc_mm.engine)
from .utils.registry import import_on_first_lookup  # noqa: E402

# DSC and its heads subclass mmpretrain.models, whose import also imports mmdet.models
# (mmpretrain's ResLayerExtraNorm): mmpretrain's MODELS registry imports them when a config
# first builds a model, so conversion, the benchmark runner and the tools start without them.
import_on_first_lookup(MMPRETRAIN_MODELS, f'{__name__}.models')

__all__ = ['__version__']


def __getattr__(name: str):
    if name == 'models':  # ``dsc_mm.models`` without an explicit ``import dsc_mm.models``
        return importlib.import_module(f'{__name__}.models')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
