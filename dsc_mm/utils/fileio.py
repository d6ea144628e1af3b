"""Writing files so that a reader never sees a partial one."""
import contextlib
import os
import uuid
from typing import Callable, Dict

import torch

from .checkpoint import CheckpointError


@contextlib.contextmanager
def atomic_file(path, mode: str = 'wb', *, makedirs: bool = False, **kwargs):
    """Open a temporary file next to ``path`` that replaces ``path`` only once fully written.

    The data is flushed and fsync'ed before ``os.replace`` (atomic on POSIX and Windows), and the
    directory entry is fsync'ed after it, so a process killed mid-write, or a machine losing
    power, leaves either the previous file or the complete new one, never a truncated one. The
    temporary file is created with mode 0o666 minus the umask, like ``open(path, 'w')``.

    Args:
        path (str | Path): The final file.
        mode (str): ``'w'`` or ``'wb'`` (optionally with ``'+'``).
        makedirs (bool): Create missing parent directories first. Defaults to False: the
            directory must exist, as for :func:`open`.
        **kwargs: Passed to :func:`open` (e.g. ``encoding``).

    Yields:
        The open temporary file.
    """
    if 'w' not in mode:
        raise ValueError(f'atomic_file writes whole files; mode {mode!r} needs "w".')
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if makedirs:
        os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f'.{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp')
    # os.open with O_EXCL: never follow a planted symlink; 0o666 & ~umask like open(path, 'w').
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, mode, **kwargs) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def atomic_write(dst: str, write: Callable) -> None:
    """Write the checkpoint-like file ``dst`` through :func:`atomic_file`, creating its directory.

    Readers never see a partial file, and a failure (or Ctrl-C) leaves no ``dst`` behind.

    Args:
        dst (str): Final path; missing parent directories are created.
        write (callable): ``write(file_object)`` writes the content.

    Raises:
        CheckpointError: ``dst`` is a directory, or the write failed (one sentence).
    """
    if os.path.isdir(dst):
        raise CheckpointError(f'{dst} is a directory; pass a file name as DST.')
    try:
        with atomic_file(dst, 'wb', makedirs=True) as file:
            write(file)
    except OSError as exc:
        raise CheckpointError(f'Could not write {dst} ({exc.strerror or exc}); check that its '
                              f'directory is writable and has free space.') from None


def save_backbone(backbone: Dict[str, torch.Tensor], dst: str) -> None:
    """Atomically save a plain ``{key: tensor}`` dict (``torch.load(weights_only=True)``-safe)."""
    atomic_write(dst, lambda file: torch.save(dict(backbone), file))


def _fsync_directory(directory: str) -> None:
    """Persist a rename (best effort: some file systems refuse fsync on directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
