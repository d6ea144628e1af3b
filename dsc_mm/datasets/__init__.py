"""Datasets: the procedural scene generator and dataset classes for the mini layouts."""
from .camvid import CamVidDataset
from .image_folder import ImageFolderDataset, LoadImageRGB
from .scenes import SCENE_CLASSES, SCENE_SEG_CLASSES, generate_scenes
from .voc_difficult import VOCTrainDifficultDataset

__all__ = [
    'CamVidDataset', 'ImageFolderDataset', 'LoadImageRGB', 'SCENE_CLASSES', 'SCENE_SEG_CLASSES',
    'VOCTrainDifficultDataset', 'generate_scenes'
]
