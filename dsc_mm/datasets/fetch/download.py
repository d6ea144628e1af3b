"""Resumable, checksummed HTTP downloads with the standard library (urllib).

A file is fetched into ``NAME.part`` next to its destination; a rerun (or a retry after a
dropped connection) asks for the missing bytes only (HTTP ``Range``), and the file takes its
final name, atomically, once its sha256 matches. Every failure a user can hit is a
:class:`FetchError` with one sentence saying what to do.
"""
import errno
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

from .manifest import sha256_of

CHUNK = 1 << 16
#: Seconds without a byte before a connection counts as lost.
TIMEOUT = 60


class FetchError(RuntimeError):
    """A download failed for a reason the user can act on; the message is one sentence."""


def _part_path(dst: Path) -> Path:
    return dst.with_name(dst.name + '.part')


def _open(url: str, offset: int):
    """Open ``url`` from byte ``offset``; maps the network errors to :class:`FetchError`."""
    request = urllib.request.Request(url, headers={'User-Agent': 'dsc_mm-fetch'})
    if offset:
        request.add_header('Range', f'bytes={offset}-')
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the .part is not a prefix of the file: restart it
            return None
        hint = ('the file is not at that address (a --mirror BASE must serve '
                'BASE/OWNER/REPO/COMMIT/PATH)' if exc.code == 404 else 'try again later')
        raise FetchError(f'{url} answered HTTP {exc.code} ({exc.reason}): {hint}.') from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, 'reason', exc)
        raise FetchError(f'Could not reach {urlsplit(url).netloc} ({reason}) for {url}: check '
                         f'the network connection, or pass --mirror BASE for a reachable '
                         f'mirror.') from None


def _write_error(exc: OSError, dst: Path, missing: int) -> FetchError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return FetchError(f'The disk holding {dst.parent} is full while writing {dst.name}: '
                          f'free at least {missing / 2**20:.1f} MiB there and rerun (the '
                          f'finished files are kept and this one resumes).')
    return FetchError(f'Could not write {dst} ({exc.strerror or exc}): check that the folder '
                      f'is writable.')


def _transfer(response, part: Path, dst: Path, append: bool,
              on_bytes: Optional[Callable[[int], None]], missing: int) -> Optional[Exception]:
    """Copy ``response`` into ``part``; returns the network error that cut it short, if any.

    Raises:
        FetchError: The disk refused a write (full, read-only...): retrying cannot help.
    """
    lost = None
    try:  # the network errors are caught inside: an OSError here comes from the disk
        with open(part, 'ab' if append else 'wb') as file:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:  # reset, timeout, short
                    lost = exc
                    break
                if not chunk:
                    break
                file.write(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
    except OSError as exc:
        raise _write_error(exc, dst, missing) from None
    return lost


def download(url: str, dst, sha256: str, size: int,
             on_bytes: Optional[Callable[[int], None]] = None, retries: int = 3) -> bool:
    """Fetch ``url`` into ``dst`` unless ``dst`` already holds the file with this sha256.

    Args:
        url (str): The file's address.
        dst (str | Path): The final path; missing folders are created.
        sha256 (str): The expected hex sha256 of the whole file.
        size (int): The expected size in bytes (for resuming and for the error messages).
        on_bytes (callable, optional): Called with the number of new bytes after each chunk
            (and with the bytes already on disk when a ``.part`` is resumed).
        retries (int): Resume attempts after a connection lost mid-file. Defaults to 3.

    Returns:
        bool: True if it downloaded, False if ``dst`` was already there with the right hash.

    Raises:
        FetchError: Unreachable host, HTTP error (e.g. 404), checksum mismatch, full disk,
            or a connection still dropping after ``retries`` resumes.
    """
    dst = Path(dst)
    if dst.is_file() and dst.stat().st_size == size and sha256_of(dst) == sha256:
        return False
    part = _part_path(dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(exc, dst, size) from None
    if part.is_file() and part.stat().st_size > size:
        part.unlink()  # longer than the file can be: not a prefix of it
    resumed = part.is_file()
    if resumed and on_bytes is not None:
        on_bytes(part.stat().st_size)
    attempt = 0
    while True:
        offset = part.stat().st_size if part.is_file() else 0
        if offset == size:
            break
        response = _open(url, offset)
        if response is None:  # 416: the server has no such range; start over
            part.unlink()
            continue
        with response:
            if offset and response.status != 206:
                # The server ignored Range and sends the whole file: count the kept bytes back.
                if on_bytes is not None:
                    on_bytes(-offset)
                offset = 0
            lost = _transfer(response, part, dst, append=bool(offset), on_bytes=on_bytes,
                             missing=size - offset)
        got = part.stat().st_size if part.is_file() else 0
        if lost is None and got >= size:
            break
        attempt += 1
        if attempt > retries:
            raise FetchError(f'The download of {url} kept breaking off at {got} of {size} bytes '
                             f'({lost or "connection closed early"}): rerun the command to '
                             f'resume it from there.') from None
    if sha256_of(part) != sha256:
        counted = part.stat().st_size
        part.unlink()
        if resumed:  # the .part of an earlier run may be stale: one fresh try before blaming
            if on_bytes is not None:
                on_bytes(-counted)
            return download(url, dst, sha256, size, on_bytes, retries)
        raise FetchError(f'{url} does not have the pinned content (sha256 mismatch for {dst}): '
                         f'the mirror or the upstream file changed; check --mirror BASE or '
                         f'report it, the partial file was deleted.')
    with open(part, 'rb+') as file:  # the bytes are on disk before the name says so
        os.fsync(file.fileno())
    os.replace(part, dst)
    return True

