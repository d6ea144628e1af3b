"""COCO 2017 instances -> PASCAL VOC 2012 layout (the derived files of ``coco128_voc``).

The rules are those of ``coco128_voc/SOURCE.md``: the 20 VOC classes taken from their COCO
counterparts (other classes are background), 1-based integer boxes, ``difficult`` for crowd
regions, class and object palette PNGs painted largest instance first (crowd = 255), and image
sets of the images holding at least one non-crowd VOC object, every 4th id to val.
"""
import io
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
from PIL import Image

from .output import write_bytes, write_text

#: The VOC classes in their standard order (index 1..20 in SegmentationClass).
VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
               'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
               'sheep', 'sofa', 'train', 'tvmonitor')

#: COCO category names whose VOC name differs; the other 14 VOC classes share their COCO name.
COCO_TO_VOC = {'airplane': 'aeroplane', 'dining table': 'diningtable',
               'motorcycle': 'motorbike', 'potted plant': 'pottedplant', 'couch': 'sofa',
               'tv': 'tvmonitor'}

IGNORE = 255


def voc_palette() -> List[int]:
    """The standard PASCAL VOC colormap: 256 RGB triplets flattened (768 ints)."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        label = index
        for shift in range(7, -1, -1):  # bit i of the label lands in bit 7-i of the colour
            red |= ((label >> 0) & 1) << shift
            green |= ((label >> 1) & 1) << shift
            blue |= ((label >> 2) & 1) << shift
            label >>= 3
        palette += [red, green, blue]
    return palette


def voc_box(bbox: Sequence[float], width: int, height: int) -> List[int]:
    """COCO ``[x, y, w, h]`` (0-based, float) -> VOC ``[xmin, ymin, xmax, ymax]`` (1-based, int).

    ``xmin = round(x) + 1`` and ``xmax = round(x + w)``, clipped to the image.
    """
    x, y, w, h = bbox
    return [min(max(round(x) + 1, 1), width), min(max(round(y) + 1, 1), height),
            min(max(round(x + w), 1), width), min(max(round(y + h), 1), height)]


def voc_objects(coco: Dict) -> Dict[int, List[Dict]]:
    """The annotations of VOC classes per image id, in the annotation file's order.

    Returns:
        dict: image id -> list of COCO annotation dicts, each with ``'voc_label'`` (1..20) added.
    """
    voc_index = {name: i + 1 for i, name in enumerate(VOC_CLASSES)}
    category_to_label = {}
    for category in coco['categories']:
        name = COCO_TO_VOC.get(category['name'], category['name'])
        if name in voc_index:
            category_to_label[category['id']] = voc_index[name]
    objects = {}
    for ann in coco['annotations']:
        if ann['category_id'] in category_to_label:
            objects.setdefault(ann['image_id'], []).append(
                dict(ann, voc_label=category_to_label[ann['category_id']]))
    return objects


def annotation_xml(image: Dict, objects: List[Dict]) -> str:
    """The VOC XML of one image (tab-indented, as VOC's own files)."""
    width, height = image['width'], image['height']
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = 'VOC2012'
    ET.SubElement(root, 'filename').text = image['file_name']
    source = ET.SubElement(root, 'source')
    ET.SubElement(source, 'database').text = \
        'MS COCO 2017 (train2017), converted to PASCAL VOC format'
    ET.SubElement(source, 'annotation').text = 'COCO 2017 instances, CC BY 4.0'
    ET.SubElement(source, 'image').text = 'flickr'
    ET.SubElement(source, 'coco_image_id').text = str(image['id'])
    size = ET.SubElement(root, 'size')
    for key, value in (('width', width), ('height', height), ('depth', 3)):
        ET.SubElement(size, key).text = str(value)
    ET.SubElement(root, 'segmented').text = '1'
    for ann in objects:
        xmin, ymin, xmax, ymax = voc_box(ann['bbox'], width, height)
        truncated = xmin == 1 or ymin == 1 or xmax == width or ymax == height
        obj = ET.SubElement(root, 'object')
        ET.SubElement(obj, 'name').text = VOC_CLASSES[ann['voc_label'] - 1]
        ET.SubElement(obj, 'pose').text = 'Unspecified'
        ET.SubElement(obj, 'truncated').text = str(int(truncated))
        ET.SubElement(obj, 'difficult').text = str(int(ann['iscrowd']))
        box = ET.SubElement(obj, 'bndbox')
        for key, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), (xmin, ymin, xmax, ymax)):
            ET.SubElement(box, key).text = str(value)
    ET.indent(root, space='\t')
    return ET.tostring(root, encoding='unicode') + '\n'


def annotation_mask(ann: Dict, height: int, width: int) -> np.ndarray:
    """The (H, W) bool mask of a COCO annotation (polygons or RLE, crowd or not)."""
    from pycocotools import mask as mask_utils  # the fetch tool's only use of pycocotools
    segmentation = ann['segmentation']
    if isinstance(segmentation, list):  # polygons: one RLE each, merged
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation['counts'], list):  # uncompressed RLE (COCO crowd regions)
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


def segmentation_masks(image: Dict, objects: List[Dict]):
    """Class and object index maps of one image, both (H, W) uint8.

    Non-crowd instances are painted largest first (by COCO ``area``), so smaller objects stay
    on top; the object map numbers them 1..N in that order. Crowd regions are painted last,
    255 in both maps.
    """
    height, width = image['height'], image['width']
    classes = np.zeros((height, width), np.uint8)
    instances = np.zeros((height, width), np.uint8)
    solid = sorted((ann for ann in objects if not ann['iscrowd']), key=lambda a: -a['area'])
    for index, ann in enumerate(solid, start=1):
        mask = annotation_mask(ann, height, width)
        classes[mask] = ann['voc_label']
        instances[mask] = index
    for ann in objects:
        if ann['iscrowd']:
            mask = annotation_mask(ann, height, width)
            classes[mask] = IGNORE
            instances[mask] = IGNORE
    return classes, instances


def write_palette_png(array: np.ndarray, path: Path, palette: List[int]) -> None:
    """Write an (H, W) uint8 index map as a palette ('P') PNG."""
    image = Image.fromarray(array, mode='P')
    image.putpalette(palette)
    buffer = io.BytesIO()
    # optimize=True: the smallest encoding, byte-identical to the reference copy's files.
    image.save(buffer, format='PNG', optimize=True)
    write_bytes(path, buffer.getvalue())


def derive_voc(coco: Dict, voc_root) -> List[str]:
    """Write Annotations/, SegmentationClass/, SegmentationObject/, ImageSets/ in ``voc_root``.

    Args:
        coco (dict): The COCO instances file (``instances_train2017.json``) as loaded.
        voc_root (str | Path): ``.../VOCdevkit/VOC2012`` (JPEGImages/ is not touched).

    Returns:
        list[str]: The sorted image ids listed in trainval.txt (zero-padded, no suffix).
    """
    voc_root = Path(voc_root)
    objects = voc_objects(coco)
    palette = voc_palette()
    listed = []
    for image in sorted(coco['images'], key=lambda im: im['file_name']):
        image_objects = objects.get(image['id'], [])
        if not any(not ann['iscrowd'] for ann in image_objects):
            continue  # no non-crowd VOC object: stays in JPEGImages, unlisted
        stem = Path(image['file_name']).stem
        listed.append(stem)
        write_text(voc_root / 'Annotations' / f'{stem}.xml',
                   annotation_xml(image, image_objects))
        classes, instances = segmentation_masks(image, image_objects)
        write_palette_png(classes, voc_root / 'SegmentationClass' / f'{stem}.png', palette)
        write_palette_png(instances, voc_root / 'SegmentationObject' / f'{stem}.png', palette)
    val = listed[3::4]  # every 4th id in sorted order
    train = [stem for stem in listed if stem not in set(val)]
    for task in ('Main', 'Segmentation'):
        for split, stems in (('train', train), ('val', val), ('trainval', listed)):
            write_text(voc_root / 'ImageSets' / task / f'{split}.txt',
                       ''.join(f'{stem}\n' for stem in stems))
    return listed
