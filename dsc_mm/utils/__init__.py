from .checkpoint import CheckpointError, load_checkpoint_file
from .fileio import atomic_file

__all__ = ['CheckpointError', 'atomic_file', 'load_checkpoint_file']
