from .checkpoint import CheckpointError, load_checkpoint_file
from .fileio import atomic_file, atomic_write, save_backbone

__all__ = [
    'CheckpointError', 'atomic_file', 'atomic_write', 'load_checkpoint_file', 'save_backbone'
]
