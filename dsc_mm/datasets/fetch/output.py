"""Writing the fetched folder's derived files: atomically, and only when their bytes change."""
from pathlib import Path

from ...utils.fileio import atomic_file


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, unless the file already holds exactly that.

    A rerun of the fetch rewrites nothing that is right (and repairs what is not).
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    with atomic_file(path, 'wb', makedirs=True) as file:
        file.write(data)


def write_text(path: Path, text: str) -> None:
    """Write a UTF-8 text file with ``\\n`` line ends."""
    write_bytes(path, text.encode('utf-8'))
