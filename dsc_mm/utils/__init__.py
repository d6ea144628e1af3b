from .checkpoint import CheckpointError, load_checkpoint_file

__all__ = ['CheckpointError', 'load_checkpoint_file']
