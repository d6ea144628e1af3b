"""Procedural scenes: a deterministic, labelled toy world in COCO, VOC and Cityscapes layouts.

Each scene is a textured background with several objects. The class of an object is carried by
its shape AND its texture family (a disk is always dotted, a square always a checkerboard...),
while colours are drawn independently of the class, so colour alone never gives the class away.
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
import colorsys
import io
import json
import multiprocessing
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

SCENE_CLASSES = ('disk', 'square', 'triangle', 'star', 'ring', 'cross')
# The texture family of each class, same order as SCENE_CLASSES.
CLASS_TEXTURES = ('dots', 'checker', 'stripes', 'blotches', 'bullseye', 'grid')
# Segmentation label maps: 0 = background, i = SCENE_CLASSES[i - 1], 255 = ignore.
SCENE_SEG_CLASSES = ('background', ) + SCENE_CLASSES
IGNORE_INDEX = 255

# Defaults sized for the 15-minute CPU demo: about 6 s of CPU time to generate, 41 MiB
# (23 MiB of it the lossless Cityscapes-style PNGs).
DEFAULT_NUM_TRAIN = 160
DEFAULT_NUM_VAL = 40
DEFAULT_NUM_UNLABELED = 400
DEFAULT_SIZE = 256

# Bump when the rendering changes: an existing folder of another version is regenerated.
GENERATOR_VERSION = 1
_SPLIT_CODES = {'train': 0, 'val': 1, 'unlabeled': 2}
_JPEG_QUALITY = 90
_MIN_OBJECTS, _MAX_OBJECTS = 2, 6
_RADIUS_RANGE = (0.07, 0.2)  # object radius as a fraction of the image size (log-uniform)
_MIN_VISIBLE_FRACTION = 0.5  # occluders may hide at most half of an earlier object
_PLACEMENT_TRIES = 20


@dataclass
class SceneObject:
    """One visible instance of a rendered scene.

    Attributes:
        label (int): index into :data:`SCENE_CLASSES`.
        mask (np.ndarray): visible part, bool, shape (H, W).
        truncated (bool): whether the full shape extends beyond the image border.
    """
    label: int
    mask: np.ndarray
    truncated: bool


# ----------------------------------------------------------------------------------- geometry
def _unit_shape(name: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Outline (and hole) of a class in unit coordinates, both (K, 2) arrays."""
    circle = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    circle = np.stack([np.cos(circle), np.sin(circle)], axis=1)
    if name == 'disk':
        return circle, None
    if name == 'ring':
        return circle, 0.55 * circle
    if name == 'square':
        angles = np.pi / 4 + np.arange(4) * np.pi / 2
        return 0.95 * np.stack([np.cos(angles), np.sin(angles)], 1), None
    if name == 'triangle':
        angles = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return 1.15 * np.stack([np.cos(angles), np.sin(angles)], 1), None
    if name == 'star':
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.15, 0.47)
        return radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1), None
    if name == 'cross':
        a, w = 1.0, 0.33
        return np.array([(-w, -a), (w, -a), (w, -w), (a, -w), (a, w), (w, w), (w, a), (-w, a),
                         (-w, w), (-a, w), (-a, -w), (-w, -w)]), None
    raise ValueError(f'unknown scene class {name!r}; expected one of {SCENE_CLASSES}.')


_UNIT_SHAPES = {name: _unit_shape(name) for name in SCENE_CLASSES}


def _fill(mask: np.ndarray, points: np.ndarray, value: int) -> None:
    """Fill a polygon given in pixel-centre coordinates, with 1/16 px precision."""
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], value, cv2.LINE_8, shift=4)


def _place(rng: np.random.Generator, label: int, size: int):
    """Draw a pose for one object.

    Returns:
        tuple: full mask (H, W) uint8, whether it is cut by the border, centre (2,) in pixels.
    """
    radius = size * np.exp(rng.uniform(*np.log(_RADIUS_RANGE)))
    centre = rng.uniform(0.05, 0.95, 2) * size
    theta = rng.uniform(0, 2 * np.pi)
    # Mild anisotropy, so that scale alone does not fix the outline.
    stretch = np.array([1.0, rng.uniform(0.8, 1.2)]) * radius
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    outline, hole = _UNIT_SHAPES[SCENE_CLASSES[label]]
    outline = (outline * stretch) @ rot.T + centre
    mask = np.zeros((size, size), np.uint8)
    _fill(mask, outline, 1)
    if hole is not None:
        _fill(mask, (hole * stretch) @ rot.T + centre, 0)
    truncated = bool((outline < -0.5).any() or (outline > size - 0.5).any())
    return mask, truncated, centre


# ----------------------------------------------------------------------------------- textures
def _colour_pair(rng: np.random.Generator) -> np.ndarray:
    """Two contrasting RGB colours (2, 3) in [0, 255], of any hue (colour is not the class)."""
    hue = rng.uniform()
    light = colorsys.hsv_to_rgb(hue, rng.uniform(0.35, 1.0), rng.uniform(0.6, 1.0))
    # The second colour differs in brightness, so the pattern survives a grayscale view.
    dark = colorsys.hsv_to_rgb((hue + rng.uniform(-0.3, 0.3)) % 1.0, rng.uniform(0.3, 1.0),
                               rng.uniform(0.1, 0.4))
    pair = np.array([light, dark], np.float32) * 255
    return pair[::-1] if rng.uniform() < 0.5 else pair


def _texture(kind: str, rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray,
             centre: np.ndarray, scale: float) -> np.ndarray:
    """Binary texture of a family, evaluated at pixel coordinates ``xx``, ``yy`` (h, w)."""
    angle = rng.uniform(0, np.pi)
    dx, dy = xx - centre[0], yy - centre[1]
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    if kind == 'stripes':
        period = rng.uniform(5, 9) * scale
        return np.mod(u + rng.uniform(0, period), period) < period * 0.5
    if kind == 'checker':
        cell = rng.uniform(4, 7) * scale
        return (np.floor(u / cell) + np.floor(v / cell)) % 2 == 0
    if kind == 'dots':
        step = rng.uniform(6, 9) * scale
        du, dv = np.mod(u, step) - step / 2, np.mod(v, step) - step / 2
        return du * du + dv * dv < (rng.uniform(0.25, 0.35) * step)**2
    if kind == 'grid':
        step = rng.uniform(6, 10) * scale
        half_width = rng.uniform(0.1, 0.16) * step
        return ((np.abs(np.mod(u, step) - step / 2) < half_width)
                | (np.abs(np.mod(v, step) - step / 2) < half_width))
    if kind == 'bullseye':
        period = rng.uniform(4, 7) * scale
        return np.mod(np.hypot(dx, dy) + rng.uniform(0, period), period) < period * 0.5
    if kind == 'blotches':
        h, w = xx.shape
        cell = 3.0 * scale
        coarse = rng.random((int(h / cell) + 2, int(w / cell) + 2), dtype=np.float32)
        return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
    raise ValueError(f'unknown texture family {kind!r}.')


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Muted cloudy background with a few clutter lines, float32 (H, W, 3) RGB."""
    cloud = np.zeros((size, size), np.float32)
    for cells, weight in ((4, 1.0), (12, 0.5), (32, 0.25)):
        grid = rng.random((cells, cells), dtype=np.float32)
        cloud += weight * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    cloud = (cloud - cloud.min()) / max(float(cloud.max() - cloud.min()), 1e-6)
    colours = np.array([colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.05, 0.45),
                                            rng.uniform(0.3, 0.9)) for _ in range(2)],
                       np.float32) * 255
    image = colours[0] * (1 - cloud[..., None]) + colours[1] * cloud[..., None]
    # Thin clutter lines: background is not uniform, so "not flat" does not mean "object".
    for _ in range(rng.integers(0, 4)):
        p0, p1 = (rng.uniform(0, size, 2).astype(int) for _ in range(2))
        colour = [float(c) for c in rng.uniform(40, 220, 3)]
        cv2.line(image, tuple(map(int, p0)), tuple(map(int, p1)), colour,
                 int(rng.integers(1, 3)), cv2.LINE_AA)
    return image


# ----------------------------------------------------------------------------------- scenes
def render_scene(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, List[SceneObject]]:
    """Render one scene.

    Args:
        rng (np.random.Generator): the scene's own generator (all randomness comes from it).
        size (int): image height and width in pixels.

    Returns:
        tuple: the image, uint8 RGB (H, W, 3), and its visible objects in painting order
        (later objects are in front).
    """
    scale = size / 256
    image = _background(rng, size)
    min_area = max(16, int((0.03 * size)**2))
    num = int(rng.integers(_MIN_OBJECTS, _MAX_OBJECTS + 1))
    # Classes without replacement within an image keep the class counts balanced.
    labels = rng.permutation(len(SCENE_CLASSES))
    labels = np.concatenate([labels, rng.permutation(len(SCENE_CLASSES))])[:num]
    full_areas: List[int] = []
    objects: List[SceneObject] = []
    for label in labels:
        for _ in range(_PLACEMENT_TRIES):
            mask, truncated, centre = _place(rng, int(label), size)
            mask = mask.astype(bool)
            if mask.sum() < min_area:
                continue
            # Keep at least half of every earlier object visible (no near-invisible labels).
            if all((obj.mask & ~mask).sum() >= _MIN_VISIBLE_FRACTION * area
                   for obj, area in zip(objects, full_areas)):
                break
        else:
            continue
        for obj in objects:
            obj.mask &= ~mask
        ys, xs = np.nonzero(mask)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        pattern = _texture(CLASS_TEXTURES[label], rng, xx, yy, centre, scale)
        colours = _colour_pair(rng)
        patch = np.where(pattern[..., None], colours[0], colours[1])
        # Soft shading across the object, as under real light (flat fills look synthetic).
        direction = rng.normal(size=2)
        ramp = (xx - xx.mean()) * direction[0] + (yy - yy.mean()) * direction[1]
        patch *= (1 + 0.25 * ramp / max(float(np.abs(ramp).max()), 1.0))[..., None]
        region = image[y0:y1, x0:x1]
        local = mask[y0:y1, x0:x1]
        region[local] = patch[local]
        full_areas.append(int(mask.sum()))
        objects.append(SceneObject(int(label), mask, truncated))
    image += 3 * rng.standard_normal(image.shape, dtype=np.float32)  # sensor grain
    image = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    return image, [obj for obj in objects if obj.mask.any()]


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image: independent of the other images and of the split sizes."""
    return np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_CODES[split], index]))


def instance_map(objects: Sequence[SceneObject], size: int) -> np.ndarray:
    """(H, W) uint8 map: 0 background, k = objects[k - 1] (visible masks are disjoint)."""
    inst = np.zeros((size, size), np.uint8)
    for k, obj in enumerate(objects, 1):
        inst[obj.mask] = k
    return inst


def semantic_maps(objects: Sequence[SceneObject], size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Class maps (H, W) uint8: exact (Cityscapes style) and with a VOC-style ignore border.

    VOC marks a band around every object outline as 255 (ignore) because outlines are
    uncertain; here the band is the 2 px where a 3x3 neighbourhood spans two instances.
    """
    inst = instance_map(objects, size)
    lut = np.array([0] + [obj.label + 1 for obj in objects], np.uint8)
    exact = lut[inst]
    kernel = np.ones((3, 3), np.uint8)
    border = cv2.dilate(inst, kernel) != cv2.erode(inst, kernel)
    voc = exact.copy()
    voc[border] = IGNORE_INDEX
    return exact, voc


# ----------------------------------------------------------------------------------- encodings
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


# ----------------------------------------------------------------------------------- writing
def _jpeg(image: np.ndarray) -> bytes:
    _, data = cv2.imencode('.jpg', image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    return data.tobytes()


def _png(array: np.ndarray) -> bytes:
    _, data = cv2.imencode('.png', array)
    return data.tobytes()


def _palette_png(labels: np.ndarray) -> bytes:
    seg = Image.fromarray(labels, mode='P')
    seg.putpalette(voc_palette())
    buffer = io.BytesIO()
    seg.save(buffer, format='PNG')
    return buffer.getvalue()


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already; avoid oversubscribing the CPUs


def _encode_labelled(task: Tuple[int, str, int, int, int]) -> Dict:
    """Render one labelled scene and encode its files (module level: runs in worker processes)."""
    seed, split, index, image_id, size = task
    image, objects = render_scene(scene_rng(seed, split, index), size)
    name = f'{image_id:06d}'
    exact, voc = semantic_maps(objects, size)
    return {
        'name': name,
        'image_id': image_id,
        'jpg': _jpeg(image),
        'png': _png(image[..., ::-1]),
        'train_ids': _png(exact),
        'voc_seg': _palette_png(voc),
        'xml': voc_xml(name, objects, size),
        'anns': [coco_annotation(obj, 0, image_id) for obj in objects],
        'truncated': sum(obj.truncated for obj in objects),
    }


def _encode_unlabeled(task: Tuple[int, str, int, int, int]) -> Dict:
    seed, split, index, image_id, size = task
    image, _ = render_scene(scene_rng(seed, split, index), size)
    return {'name': f'{image_id:06d}', 'jpg': _jpeg(image)}


def _categories() -> List[Dict]:
    return [{'id': i + 1, 'name': name, 'supercategory': 'shape'}
            for i, name in enumerate(SCENE_CLASSES)]


def _write_labelled_split(root: Path, split: str, first_id: int, count: int, seed: int,
                          size: int, imap, progress) -> Dict:
    """Write one labelled split in the three layouts; return its statistics."""
    voc = root / 'VOCdevkit' / 'VOC2012'
    dirs = {
        'coco': root / 'coco' / split,
        'jpeg': voc / 'JPEGImages',
        'xml': voc / 'Annotations',
        'voc_seg': voc / 'SegmentationClass',
        'city_img': root / 'cityscapes' / 'leftImg8bit' / split / 'scenes',
        'city_seg': root / 'cityscapes' / 'gtFine' / split / 'scenes',
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    images, annotations, names = [], [], []
    stats = {'images': count, 'instances': [0] * len(SCENE_CLASSES), 'polygon': 0, 'rle': 0,
             'truncated': 0}
    tasks = [(seed, split, i, first_id + i, size) for i in range(count)]
    for done, item in enumerate(imap(_encode_labelled, tasks), 1):
        name = item['name']
        names.append(name)
        (dirs['coco'] / f'{name}.jpg').write_bytes(item['jpg'])
        (dirs['jpeg'] / f'{name}.jpg').write_bytes(item['jpg'])
        (dirs['xml'] / f'{name}.xml').write_text(item['xml'])
        (dirs['voc_seg'] / f'{name}.png').write_bytes(item['voc_seg'])
        (dirs['city_img'] / f'{name}_leftImg8bit.png').write_bytes(item['png'])
        (dirs['city_seg'] / f'{name}_gtFine_labelTrainIds.png').write_bytes(item['train_ids'])
        images.append({'id': item['image_id'], 'file_name': f'{name}.jpg', 'height': size,
                       'width': size})
        for ann in item['anns']:
            ann['id'] = len(annotations) + 1
            annotations.append(ann)
            stats['instances'][ann['category_id'] - 1] += 1
            stats['rle' if isinstance(ann['segmentation'], dict) else 'polygon'] += 1
        stats['truncated'] += item['truncated']
        if progress is not None:
            progress(split, done, count)
    coco = {
        'info': {'description': f'dsc_mm procedural scenes ({split}), seed {seed}',
                 'version': str(GENERATOR_VERSION)},
        'licenses': [],
        'images': images,
        'annotations': annotations,
        'categories': _categories(),
    }
    (root / 'coco' / 'annotations').mkdir(parents=True, exist_ok=True)
    with open(root / 'coco' / 'annotations' / f'instances_{split}.json', 'w') as f:
        json.dump(coco, f, separators=(',', ':'))
    stats['names'] = names
    return stats


def _write_unlabeled(root: Path, count: int, seed: int, size: int, imap, progress) -> None:
    folder = root / 'unlabeled'
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [(seed, 'unlabeled', i, i, size) for i in range(count)]
    for done, item in enumerate(imap(_encode_unlabeled, tasks), 1):
        (folder / f'{item["name"]}.jpg').write_bytes(item['jpg'])
        if progress is not None:
            progress('unlabeled', done, count)


def _write_image_sets(root: Path, train: Sequence[str], val: Sequence[str]) -> None:
    for task in ('Main', 'Segmentation'):
        folder = root / 'VOCdevkit' / 'VOC2012' / 'ImageSets' / task
        folder.mkdir(parents=True, exist_ok=True)
        for split, names in (('train', train), ('val', val), ('trainval', [*train, *val])):
            (folder / f'{split}.txt').write_text(''.join(f'{n}\n' for n in names))


def _readme(params: Dict, stats: Dict[str, Dict]) -> str:
    rows = '\n'.join(
        f'| {name} | {CLASS_TEXTURES[i]} | {stats["train"]["instances"][i]} | '
        f'{stats["val"]["instances"][i]} |' for i, name in enumerate(SCENE_CLASSES))
    p = params
    return f"""# Procedural scenes (dsc_mm.datasets.scenes, generator version {GENERATOR_VERSION})

Regenerate: `python tools/generate_scenes.py --out <this folder> --seed {p['seed']} \
--num-train {p['num_train']} --num-val {p['num_val']} --num-unlabeled {p['num_unlabeled']} \
--size {p['size']}`

seed {p['seed']}; {p['num_train']} train + {p['num_val']} val labelled scenes and \
{p['num_unlabeled']} unlabelled images, {p['size']}x{p['size']} px.
Each scene: a cloudy background with clutter lines and {_MIN_OBJECTS}-{_MAX_OBJECTS} objects \
(radius {_RADIUS_RANGE[0]}-{_RADIUS_RANGE[1]} of the image, log-uniform), painted in order: \
later objects occlude earlier ones (at most half of an object is hidden); masks are the visible \
parts.
The class is given by shape and texture together; colours are random.

| class (category id = row) | texture | train instances | val instances |
|---|---|---|---|
{rows}

Annotations: train {stats['train']['polygon']} polygons + {stats['train']['rle']} RLE, \
val {stats['val']['polygon']} polygons + {stats['val']['rle']} RLE (RLE for rings and for \
objects split by occlusion); iscrowd is always 0; \
{stats['train']['truncated'] + stats['val']['truncated']} objects cut by the image border \
(VOC `truncated=1`).

| path | content |
|---|---|
| `unlabeled/NNNNNN.jpg` | pretraining images (no labels) |
| `coco/{{train,val}}/`, `coco/annotations/instances_{{train,val}}.json` | COCO instances, \
category ids 1..{len(SCENE_CLASSES)} |
| `VOCdevkit/VOC2012/` | JPEGImages, Annotations (det XML), SegmentationClass (palette PNG: \
0 background, i = class i, 255 = 2 px ignore border), ImageSets/{{Main,Segmentation}} |
| `cityscapes/leftImg8bit/{{train,val}}/scenes/`, `cityscapes/gtFine/...labelTrainIds.png` | \
same scenes; labels 0 background, i = class i, exact (no ignore border) |
"""


def _read_meta(out: Path) -> Optional[Dict]:
    try:
        return json.loads((out / 'meta.json').read_text())
    except (OSError, ValueError):
        return None


def _remove_stale_tmp(out: Path) -> None:
    """Delete temporary folders of interrupted runs (their process no longer exists)."""
    for tmp in [*out.parent.glob(f'{out.name}.tmp-*'), *out.parent.glob(f'{out.name}.old-*')]:
        try:
            pid = int(tmp.name.rsplit('-', 1)[1])
            os.kill(pid, 0)
        except ValueError:
            continue
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            continue


def generate_scenes(out_dir,
                    num_train: int = DEFAULT_NUM_TRAIN,
                    num_val: int = DEFAULT_NUM_VAL,
                    num_unlabeled: int = DEFAULT_NUM_UNLABELED,
                    size: int = DEFAULT_SIZE,
                    seed: int = 0,
                    num_workers: int = 1,
                    progress: Optional[Callable[[str, int, int], None]] = None) -> Path:
    """Write the procedural scene dataset to ``out_dir`` (see the module docstring for the layout).

    The dataset is built in ``<out_dir>.tmp-<pid>`` and renamed into place when complete, so an
    interrupted run never leaves a folder that looks finished. If ``out_dir`` already holds a
    dataset made with the same parameters (``meta.json``), nothing is done.

    Args:
        out_dir (str | Path): output folder.
        num_train (int): labelled training scenes.
        num_val (int): labelled validation scenes.
        num_unlabeled (int): unlabelled pretraining images.
        size (int): image side in pixels.
        seed (int): the seed; the same arguments give byte-identical files.
        num_workers (int): processes that render images (the output does not depend on it).
        progress (callable, optional): called as ``progress(split, done, total)``.

    Returns:
        Path: ``out_dir``.
    """
    if min(num_train, num_val) < 1 or num_unlabeled < 0 or size < 32:
        raise ValueError(f'generate_scenes needs num_train >= 1, num_val >= 1, num_unlabeled >= 0 '
                         f'and size >= 32 (got {num_train}, {num_val}, {num_unlabeled}, {size}).')
    out = Path(out_dir)
    params = {'num_train': int(num_train), 'num_val': int(num_val),
              'num_unlabeled': int(num_unlabeled), 'size': int(size), 'seed': int(seed)}
    meta = _read_meta(out)
    if _is_current(meta, params):
        return out
    if out.exists() and meta is None and any(out.iterdir()):
        raise FileExistsError(f'{out} exists and is not a scenes dataset (no meta.json); '
                              'delete it or pass another output folder.')
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(out)
    tmp = out.parent / f'{out.name}.tmp-{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    pool = None
    try:
        if num_workers > 1:
            # fork: workers need only numpy/cv2, and a spawned worker would re-import torch
            # through dsc_mm/__init__ (seconds each).
            method = 'fork' if 'fork' in multiprocessing.get_all_start_methods() else 'spawn'
            pool = multiprocessing.get_context(method).Pool(num_workers, _init_worker)
            imap = partial(pool.imap, chunksize=4)
        else:
            imap = map
        stats = {
            'train': _write_labelled_split(tmp, 'train', 0, num_train, seed, size, imap, progress),
            'val': _write_labelled_split(tmp, 'val', num_train, num_val, seed, size, imap,
                                         progress),
        }
        _write_unlabeled(tmp, num_unlabeled, seed, size, imap, progress)
        _write_image_sets(tmp, stats['train'].pop('names'), stats['val'].pop('names'))
        (tmp / 'README.md').write_text(_readme(params, stats))
        meta = {'generator': 'dsc_mm.datasets.scenes', 'version': GENERATOR_VERSION,
                'params': params, 'classes': list(SCENE_CLASSES),
                'textures': list(CLASS_TEXTURES), 'stats': stats}
        # meta.json last: a folder with it is complete.
        (tmp / 'meta.json').write_text(json.dumps(meta, indent=2))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if pool is not None:
            pool.terminate()
    _move_into_place(tmp, out, params)
    return out


def _is_current(meta: Optional[Dict], params: Dict) -> bool:
    return meta is not None and meta.get('version') == GENERATOR_VERSION \
        and meta.get('params') == params


def _move_into_place(tmp: Path, out: Path, params: Dict) -> None:
    """Rename the finished folder to ``out``, replacing an older scenes dataset there."""
    if _is_current(_read_meta(out), params):  # another process finished the same data first
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = None
    if out.exists():
        old = out.parent / f'{out.name}.old-{os.getpid()}'
        out.rename(old)
    try:
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not _is_current(_read_meta(out), params):
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
