"""Build the real mini datasets in a folder: download the pinned files, then derive the rest.

The result is the folder ``tools/benchmark.py --suite mini-real --data`` expects: ``coco_tiny/``,
``coco128_voc/`` and ``camvid_mini/``, each with its ``SOURCE.md`` (origin and licences).
"""
import json
import shutil
from pathlib import Path
from typing import Dict, Optional

from .camvid import derive_camvid
from .derive_voc import derive_voc
from .download import FetchError, download
from .manifest import upstream_files
from .output import write_text
from .progress import Progress

#: The three datasets, in the order they are fetched.
DATASETS = ('coco_tiny', 'coco128_voc', 'camvid_mini')
SOURCE_TEXTS = Path(__file__).with_name('sources')


def _free_bytes(folder: Path) -> int:
    while not folder.exists():  # the output folder may not exist yet: ask its first ancestor
        folder = folder.parent
    return shutil.disk_usage(folder).free


def write_derived(out) -> None:
    """Write every file that is not an upstream download (needs the downloads in place).

    ``README.md`` and each ``SOURCE.md`` come from the package's ``sources/`` texts; the VOC
    layout of coco128 and the CamVid lists are computed (:mod:`.derive_voc`, :mod:`.camvid`).
    """
    out = Path(out)
    write_text(out / 'README.md', (SOURCE_TEXTS / 'README.md').read_text(encoding='utf-8'))
    for dataset in DATASETS:
        write_text(out / dataset / 'SOURCE.md',
                   (SOURCE_TEXTS / f'{dataset}.md').read_text(encoding='utf-8'))
    derive_camvid(out / 'camvid_mini')
    coco_file = out / 'coco128_voc' / 'coco_annotations' / 'instances_train2017.json'
    derive_voc(json.loads(coco_file.read_text(encoding='utf-8')),
               out / 'coco128_voc' / 'VOCdevkit' / 'VOC2012')


def fetch_mini_real(out, mirror: Optional[str] = None, stream=None) -> Dict[str, int]:
    """Download the pinned upstream files into ``out`` (skipping good ones) and derive the rest.

    Args:
        out (str | Path): The output folder, created if missing.
        mirror (str, optional): Fetch ``MIRROR/OWNER/REPO/COMMIT/PATH`` instead of
            ``https://raw.githubusercontent.com/OWNER/REPO/COMMIT/PATH``.
        stream (file, optional): Where the progress goes. Defaults to ``sys.stdout``.

    Returns:
        dict: ``files`` (upstream files), ``fetched`` and ``kept`` (already there, right hash),
        ``bytes`` (bytes fetched).

    Raises:
        FetchError: A download failed (one sentence: unreachable host, HTTP error, checksum
            mismatch, full disk); the files already fetched are kept for the next run.
    """
    out = Path(out)
    files = upstream_files(datasets=DATASETS)
    todo = []
    for file in files:
        target = out / file.dst
        if not (target.is_file() and target.stat().st_size == file.size):
            todo.append(file)  # a file of the right size is hashed by download() itself
    missing = sum(file.size for file in todo)
    if missing > _free_bytes(out):
        raise FetchError(f'{out} needs {missing / 2**20:.1f} MiB more but its disk has '
                         f'{_free_bytes(out) / 2**20:.1f} MiB free: free some space or pass '
                         f'another --out.')
    progress = Progress(sum(file.size for file in files), len(files), stream)
    fetched = fetched_bytes = 0
    try:
        for file in files:
            if download(file.url(mirror), out / file.dst, file.sha256, file.size,
                        on_bytes=progress.add):
                fetched += 1
                fetched_bytes += file.size
            else:
                progress.add(file.size)
            progress.file_done()
    finally:
        progress.close()
    try:
        write_derived(out)
    except OSError as exc:
        raise FetchError(f'Could not write the derived files under {out} ({exc.strerror or exc} '
                         f'for {exc.filename}): free some space or make the folder writable, '
                         f'then rerun (the downloads are kept).') from None
    return dict(files=len(files), fetched=fetched, kept=len(files) - fetched,
                bytes=fetched_bytes)
