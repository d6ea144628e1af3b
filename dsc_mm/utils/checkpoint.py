"""The one way dsc_mm reads a checkpoint file: safely, with one clear sentence on failure."""
import os
import pickle

import numpy as np
import torch


def _mmengine_checkpoint_globals():
    """Types found in mmengine checkpoints besides tensors and plain containers.

    mmengine 0.10.7 calls ``torch.load`` without ``weights_only`` (open-mmlab/mmengine#1655).
    Since torch 2.6 that means ``weights_only=True``, and its own checkpoints no longer load:
    ``meta['message_hub']`` holds :class:`HistoryBuffer` objects of numpy arrays and numpy
    scalars. Rather than switching safe loading off (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``),
    we allow exactly these types, so a pickle that would execute code is still refused.
    """
    from mmengine.logging import HistoryBuffer
    from numpy.core.multiarray import _reconstruct, scalar

    def history_buffer_getattr(obj, name):
        # HistoryBuffer pickles its statistics table as getattr(HistoryBuffer, 'mean') etc.
        # Allowing builtins.getattr itself would hand any attribute of any allowed object to
        # the unpickler, so it is replaced by this narrow stand-in.
        # The four built-in statistics are registered only once a HistoryBuffer is created.
        allowed = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
        if obj is HistoryBuffer and name in allowed:
            return getattr(obj, name)
        raise pickle.UnpicklingError(f'refused getattr({obj!r}, {name!r}) while loading a '
                                     f'checkpoint: only HistoryBuffer statistics are allowed')

    dtype_classes = [type(np.dtype(t)) for t in
                     (np.float64, np.float32, np.float16, np.int64, np.int32, np.int16,
                      np.int8, np.uint8, np.bool_)]
    return [HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes,
            (history_buffer_getattr, 'builtins.getattr')]


SAFE_GLOBALS = _mmengine_checkpoint_globals()


def register_safe_globals():
    """Allow mmengine's own checkpoint types in ``torch.load(weights_only=True)``."""
    torch.serialization.add_safe_globals(SAFE_GLOBALS)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message says which file and what to do."""


def load_checkpoint_file(path: str, map_location='cpu'):
    """Load ``path`` with ``torch.load(weights_only=True)``.

    Only tensors, plain containers and the allowlist :data:`SAFE_GLOBALS` are accepted, so a
    file crafted to execute code when unpickled is refused instead of run.

    Args:
        path (str): A ``.pth`` file written by torch / mmengine.
        map_location: Passed to :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The loaded object (usually a dict).

    Raises:
        CheckpointError: Missing file, not a torch checkpoint, or unsafe content.
    """
    # ``import dsc_mm`` registers the allowlist already; repeating it (a set union) keeps this
    # loader correct even after torch's safe_globals were reset by other code.
    register_safe_globals()
    if not os.path.isfile(path):
        raise CheckpointError(f'Checkpoint {path} does not exist; check the path.')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _weights_only_detail(str(exc))
        if 'GLOBAL' in detail or 'global' in detail or 'getattr' in detail:
            raise CheckpointError(
                f'Checkpoint {path} was refused: it holds objects outside the safe-loading '
                f'allowlist and could execute code when loaded ({detail}); use a checkpoint '
                f'written by dsc_mm/mmengine, or re-save the weights as a plain state dict of '
                f'tensors from a trusted environment.') from None
        raise CheckpointError(f'{path} is not a readable torch checkpoint ({detail}); pass a '
                              f'.pth file written by torch.save or mmengine.') from None
    except Exception as exc:  # noqa: BLE001 - torch raises KeyError, EOFError... on non-checkpoints
        raise CheckpointError(f'{path} is not a readable torch checkpoint '
                              f'({type(exc).__name__}: {exc}); it may be '
                              f'truncated or of another format: pass a .pth file written by '
                              f'torch.save or mmengine.') from None


def _weights_only_detail(message: str) -> str:
    """The informative line of torch's long 'Weights only load failed' message."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    skip = ('Weights only load failed', 'Check the documentation', 'Please file an issue')
    useful = [line for line in lines if not line.startswith(skip)]
    return (useful[-1] if useful else lines[-1] if lines else message)[:300]
