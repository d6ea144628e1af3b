"""Rendering: objects of six shape classes on cloudy backgrounds, with occlusion.

A class is a silhouette only: every instance draws its texture family, texture scale and
orientation, colours, size, aspect and rotation from pools that all classes share, so no local
appearance gives the class away and a representation must see the outline to name it.
"""
import colorsys
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

SCENE_CLASSES = ('disk', 'square', 'triangle', 'star', 'ring', 'cross')
# The texture families every instance draws from, whatever its class.
TEXTURES = ('dots', 'checker', 'stripes', 'blotches', 'bullseye', 'grid')
# Texture periods (pixels at 256 px): coarse enough that a pattern survives the pretraining
# views (crops of 20-100 % of the image resized to 96 px shrink it up to 2.7x).
TEXTURE_PERIOD = (12.0, 24.0)
# Segmentation label maps: 0 = background, i = SCENE_CLASSES[i - 1], 255 = ignore.
SCENE_SEG_CLASSES = ('background', ) + SCENE_CLASSES
IGNORE_INDEX = 255
_SPLIT_CODES = {'train': 0, 'val': 1, 'unlabeled': 2}
MIN_OBJECTS, MAX_OBJECTS = 2, 6
RADIUS_RANGE = (0.07, 0.2)  # object radius as a fraction of the image size (log-uniform)
_MIN_VISIBLE_FRACTION = 0.5  # occluders may hide at most half of an earlier object
_PLACEMENT_TRIES = 20


@dataclass
class SceneObject:
    """One visible instance of a rendered scene.

    Attributes:
        label (int): index into :data:`SCENE_CLASSES`.
        mask (np.ndarray): visible part, bool, shape (H, W).
        truncated (bool): whether the full shape extends beyond the image border.
        texture (str): the instance's texture family (one of :data:`TEXTURES`, drawn
            independently of the class).
    """
    label: int
    mask: np.ndarray
    truncated: bool
    texture: str = ''


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
    radius = size * np.exp(rng.uniform(*np.log(RADIUS_RANGE)))
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
    """Binary texture of a family, evaluated at pixel coordinates ``xx``, ``yy`` (h, w).

    Every family draws its period from the same range (:data:`TEXTURE_PERIOD` times ``scale``),
    so the pattern's scale says nothing about the family or the class.
    """
    angle = rng.uniform(0, np.pi)
    period = np.exp(rng.uniform(*np.log(TEXTURE_PERIOD))) * scale
    dx, dy = xx - centre[0], yy - centre[1]
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    if kind == 'stripes':
        return np.mod(u + rng.uniform(0, period), period) < period * 0.5
    if kind == 'checker':
        cell = period / 2
        return (np.floor(u / cell) + np.floor(v / cell)) % 2 == 0
    if kind == 'dots':
        du, dv = np.mod(u, period) - period / 2, np.mod(v, period) - period / 2
        return du * du + dv * dv < (rng.uniform(0.25, 0.35) * period)**2
    if kind == 'grid':
        half_width = rng.uniform(0.1, 0.16) * period
        return ((np.abs(np.mod(u, period) - period / 2) < half_width)
                | (np.abs(np.mod(v, period) - period / 2) < half_width))
    if kind == 'bullseye':
        return np.mod(np.hypot(dx, dy) + rng.uniform(0, period), period) < period * 0.5
    if kind == 'blotches':
        h, w = xx.shape
        cell = period / 2
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
    num = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
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
        texture = TEXTURES[int(rng.integers(len(TEXTURES)))]  # independent of the class
        pattern = _texture(texture, rng, xx, yy, centre, scale)
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
        objects.append(SceneObject(int(label), mask, truncated, texture))
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
