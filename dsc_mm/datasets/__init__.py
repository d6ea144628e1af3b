"""Datasets: the procedural scene generator and dataset classes for the mini layouts.

:class:`CamVidDataset` is an mmseg dataset, and importing it imports all of ``mmseg.datasets``,
which pretraining, conversion and the benchmark runner never use: mmseg's DATASETS registry
imports it on its first lookup instead (:func:`dsc_mm.utils.import_on_first_lookup`), and
``dsc_mm.datasets.CamVidDataset`` on first access.
"""
from importlib import import_module

from mmseg.registry import DATASETS as MMSEG_DATASETS  # the registry only, not mmseg.datasets

from ..utils.registry import import_on_first_lookup
from .image_folder import ImageFolderDataset, LoadImageRGB
from .scenes import SCENE_CLASSES, SCENE_SEG_CLASSES, generate_scenes

__all__ = [
    'CamVidDataset', 'ImageFolderDataset', 'LoadImageRGB', 'SCENE_CLASSES', 'SCENE_SEG_CLASSES',
    'generate_scenes'
]

import_on_first_lookup(MMSEG_DATASETS, f'{__name__}.camvid')


def __getattr__(name: str):
    if name == 'CamVidDataset':
        return import_module(f'{__name__}.camvid').CamVidDataset
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
