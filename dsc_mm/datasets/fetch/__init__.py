"""Fetch the real mini datasets (coco_tiny, coco128_voc, camvid_mini) from their pinned sources.

``tools/fetch_data.py`` is the command; :func:`fetch_mini_real` does the work: the upstream files
listed in ``manifest.json`` (:mod:`.manifest`) are downloaded and checked (:mod:`.download`),
then the derived files are written (:mod:`.derive_voc`, :mod:`.camvid`). See docs/data.md.
"""
from .download import FetchError
from .manifest import UpstreamFile, build_manifest, load_manifest, upstream_files
from .mini_real import DATASETS, fetch_mini_real, write_derived

__all__ = [
    'DATASETS', 'FetchError', 'UpstreamFile', 'build_manifest', 'fetch_mini_real',
    'load_manifest', 'upstream_files', 'write_derived'
]
