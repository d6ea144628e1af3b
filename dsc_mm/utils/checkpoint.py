"""The one way dsc_mm reads a checkpoint file: safely, with one clear sentence on failure."""
import os
import pickle

import torch


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message says which file and what to do."""


def load_checkpoint_file(path: str, map_location='cpu'):
    """Load ``path`` with ``torch.load(weights_only=True)``.

    Only tensors, plain containers and the allowlist of :mod:`dsc_mm.compat` are accepted, so a
    file crafted to execute code when unpickled is refused instead of run.

    Args:
        path (str): A ``.pth`` file written by torch / mmengine.
        map_location: Passed to :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The loaded object (usually a dict).

    Raises:
        CheckpointError: Missing file, not a torch checkpoint, or unsafe content.
    """
    from ..compat import register_safe_globals
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
