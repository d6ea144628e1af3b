"""Encodings of a rendered scene: boxes, COCO polygons/RLE, VOC XML and palette."""
from functools import lru_cache
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from .render import SCENE_CLASSES, SceneObject


def mask_bbox(mask: np.ndarray) -> List[int]:
    """Tight box of a mask in COCO ``[x, y, w, h]`` (pixels counted inclusively)."""
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1)]


def encode_rle(mask: np.ndarray) -> Dict:
    """COCO compressed RLE of a bool mask (H, W), JSON-ready."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': [int(v) for v in rle['size']], 'counts': rle['counts'].decode('ascii')}


def mask_polygon(mask: np.ndarray) -> Optional[List[float]]:
    """A COCO polygon that pycocotools rasterises back to exactly ``mask``, or None.

    The mask is upsampled 2x and its outline traced through the centres of the boundary
    sub-pixels: in COCO coordinates (pixel i spans [i, i + 1)) the outline then runs 0.25 px
    outside every boundary pixel centre and 0.75 px inside every outside one, so sampling at
    pixel centres, as pycocotools does, gives back the mask. Masks with holes or several pieces
    have no single hole-free polygon and return None (they are stored as RLE).
    """
    up = cv2.resize(mask.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if len(contours) != 1 or len(contours[0]) < 3:
        return None
    polygon = ((contours[0][:, 0, :] + 0.5) / 2).ravel().tolist()  # COCO coordinates
    decoded = mask_utils.decode(mask_utils.frPyObjects([polygon], *mask.shape))[..., 0]
    # Diagonal pinches can still trip the rasteriser: keep only exact polygons.
    return polygon if np.array_equal(decoded.astype(bool), mask) else None


def coco_annotation(obj: SceneObject, ann_id: int, image_id: int) -> Dict:
    """COCO instance annotation: polygon when exact, else RLE (rings, fragments)."""
    polygon = mask_polygon(obj.mask)
    return {
        'id': ann_id,
        'image_id': image_id,
        'category_id': obj.label + 1,
        'bbox': mask_bbox(obj.mask),
        'area': int(obj.mask.sum()),
        'iscrowd': 0,
        'segmentation': [polygon] if polygon is not None else encode_rle(obj.mask),
    }


@lru_cache(maxsize=1)
def voc_palette() -> List[int]:
    """PASCAL VOC's 256-entry colour map, flattened for ``Image.putpalette``."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


def voc_xml(name: str, objects: Sequence[SceneObject], size: int) -> str:
    """VOC detection XML; boxes are 1-based inclusive, as in VOC."""
    lines = ['<annotation>', '\t<folder>VOC2012</folder>', f'\t<filename>{name}.jpg</filename>',
             '\t<source><database>dsc_mm procedural scenes</database></source>',
             f'\t<size><width>{size}</width><height>{size}</height><depth>3</depth></size>',
             '\t<segmented>1</segmented>']
    for obj in objects:
        x, y, w, h = mask_bbox(obj.mask)
        lines += ['\t<object>', f'\t\t<name>{SCENE_CLASSES[obj.label]}</name>',
                  '\t\t<pose>Unspecified</pose>',
                  f'\t\t<truncated>{int(obj.truncated)}</truncated>',
                  '\t\t<difficult>0</difficult>',
                  f'\t\t<bndbox><xmin>{x + 1}</xmin><ymin>{y + 1}</ymin>'
                  f'<xmax>{x + w}</xmax><ymax>{y + h}</ymax></bndbox>', '\t</object>']
    return '\n'.join(lines + ['</annotation>', ''])
