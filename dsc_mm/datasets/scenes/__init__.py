"""Procedural scenes: a deterministic, labelled toy world in COCO, VOC and Cityscapes layouts.

Each scene is a cloudy background with several objects. The class of an object is its
silhouette (disk, square, ...) and nothing else: texture family, texture scale, colours, size and
rotation are drawn per instance from pools shared by all classes, and the background carries no
class, so only the shape tells the classes apart.
Objects are painted in order, so later ones occlude earlier ones; every mask is the VISIBLE part.

The same scenes are written in the three layouts the transfer configs read (COCO instances,
PASCAL VOC detection + segmentation, Cityscapes semantic segmentation), plus a folder of
unlabelled images for pretraining. Everything is seeded per image (``seed``, split, index), so the
same arguments give byte-identical files, and a larger ``num_train`` keeps the first images.

Rendering uses numpy and OpenCV only. Polygons are traced so that a pixel is inside exactly
when its centre is inside (0.25 px margin), which is how COCO's rasteriser decides (each polygon
is checked with pycocotools); instances that are not one hole-free piece (a ring, a fragment
split by occlusion) are stored as RLE.
"""
from .annotations import (coco_annotation, encode_rle, mask_bbox, mask_polygon, voc_palette,
                          voc_xml)
from .render import (IGNORE_INDEX, SCENE_CLASSES, SCENE_SEG_CLASSES, TEXTURES, SceneObject,
                     instance_map, render_scene, scene_rng, semantic_maps)
from .writer import (DEFAULT_NUM_TRAIN, DEFAULT_NUM_UNLABELED, DEFAULT_NUM_VAL, DEFAULT_SIZE,
                     GENERATOR_VERSION, generate_scenes)

__all__ = [
    'DEFAULT_NUM_TRAIN', 'DEFAULT_NUM_UNLABELED', 'DEFAULT_NUM_VAL', 'DEFAULT_SIZE',
    'GENERATOR_VERSION', 'IGNORE_INDEX', 'SCENE_CLASSES', 'SCENE_SEG_CLASSES', 'TEXTURES',
    'SceneObject', 'coco_annotation', 'encode_rle', 'generate_scenes', 'instance_map',
    'mask_bbox', 'mask_polygon', 'render_scene', 'scene_rng', 'semantic_maps', 'voc_palette',
    'voc_xml'
]
