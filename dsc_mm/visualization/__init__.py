"""Plots of training runs."""
from .curves import DEFAULT_KEYS, find_scalars, plot_curves, read_scalars, window_means

__all__ = ['DEFAULT_KEYS', 'find_scalars', 'plot_curves', 'read_scalars', 'window_means']
