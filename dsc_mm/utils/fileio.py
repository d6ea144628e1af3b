"""Writing files so that a reader never sees a partial one."""
import contextlib
import os
import uuid


@contextlib.contextmanager
def atomic_file(path, mode: str = 'wb', **kwargs):
    """Open a temporary file next to ``path`` that replaces ``path`` only once fully written.

    The data is flushed and fsync'ed before ``os.replace`` (atomic on POSIX and Windows), and the
    directory entry is fsync'ed after it, so a process killed mid-write, or a machine losing
    power, leaves either the previous file or the complete new one, never a truncated one. The
    temporary file is created with mode 0o666 minus the umask, like ``open(path, 'w')``.

    Args:
        path (str | Path): The final file; its directory must exist.
        mode (str): ``'w'`` or ``'wb'`` (optionally with ``'+'``).
        **kwargs: Passed to :func:`open` (e.g. ``encoding``).

    Yields:
        The open temporary file.
    """
    if 'w' not in mode:
        raise ValueError(f'atomic_file writes whole files; mode {mode!r} needs "w".')
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
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
