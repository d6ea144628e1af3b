"""dsc_mm: Dense Semantic Contrast (Li et al., ACM MM 2021) for the OpenMMLab stack."""
from .version import __version__

__all__ = ['__version__']
