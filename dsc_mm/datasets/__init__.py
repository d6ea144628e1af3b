"""Datasets: the procedural scene generator and dataset classes for the mini layouts.

:class:`CamVidDataset` (mmseg) and :class:`VOCTrainDifficultDataset` (mmdet) subclass upstream
datasets, and importing them imports all of ``mmseg.datasets`` / ``mmdet.datasets``, which
pretraining, conversion and the benchmark runner never use: the registry they register into
imports them on its first lookup instead (:func:`dsc_mm.utils.registry.import_on_first_lookup`),
and ``dsc_mm.datasets.<name>`` on first access.
"""
from importlib import import_module

from mmdet.registry import DATASETS as MMDET_DATASETS  # the registries only, not the datasets
from mmseg.registry import DATASETS as MMSEG_DATASETS

from ..utils.registry import import_on_first_lookup
from .image_folder import ImageFolderDataset, LoadImageRGB
from .scenes import SCENE_CLASSES, SCENE_SEG_CLASSES, generate_scenes

__all__ = [
    'CamVidDataset', 'ImageFolderDataset', 'LoadImageRGB', 'SCENE_CLASSES', 'SCENE_SEG_CLASSES',
    'VOCTrainDifficultDataset', 'generate_scenes'
]

#: Dataset classes registered on first lookup: name -> (module, registry).
_LAZY = {
    'CamVidDataset': (f'{__name__}.camvid', MMSEG_DATASETS),
    'VOCTrainDifficultDataset': (f'{__name__}.voc_difficult', MMDET_DATASETS),
}
for _module, _registry in _LAZY.values():
    import_on_first_lookup(_registry, _module)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name][0]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
