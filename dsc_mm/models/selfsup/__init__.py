"""Self-supervised algorithms."""
from .dsc import DSC

__all__ = ['DSC']
