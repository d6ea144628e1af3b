"""Writing the scenes to disk in the COCO, VOC and Cityscapes layouts (atomically, resumable)."""
import io
import json
import multiprocessing
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from .annotations import coco_annotation, voc_palette, voc_xml
from .render import (MAX_OBJECTS, MIN_OBJECTS, RADIUS_RANGE, SCENE_CLASSES, TEXTURE_PERIOD,
                     TEXTURES, render_scene, scene_rng, semantic_maps)

# Defaults sized for the 15-minute CPU demo: about 6 s of CPU time to generate, 41 MiB
# (23 MiB of it the lossless Cityscapes-style PNGs).
DEFAULT_NUM_TRAIN = 160
DEFAULT_NUM_VAL = 40
DEFAULT_NUM_UNLABELED = 400
DEFAULT_SIZE = 256

# Bump when the rendering changes: an existing folder of another version is regenerated.
GENERATOR_VERSION = 2
_JPEG_QUALITY = 90

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
        'textures': [obj.texture for obj in objects],
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
             'truncated': 0,
             # class x texture family counts: shows that the texture does not give the class
             'textures': [[0] * len(TEXTURES) for _ in SCENE_CLASSES]}
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
        for ann, texture in zip(item['anns'], item['textures']):
            ann['id'] = len(annotations) + 1
            annotations.append(ann)
            stats['instances'][ann['category_id'] - 1] += 1
            stats['textures'][ann['category_id'] - 1][TEXTURES.index(texture)] += 1
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
        f'| {name} | {stats["train"]["instances"][i]} | {stats["val"]["instances"][i]} | '
        + ' | '.join(str(stats['train']['textures'][i][t] + stats['val']['textures'][i][t])
                     for t in range(len(TEXTURES))) + ' |'
        for i, name in enumerate(SCENE_CLASSES))
    p = params
    return f"""# Procedural scenes (dsc_mm.datasets.scenes, generator version {GENERATOR_VERSION})

Regenerate: `python tools/generate_scenes.py --out <this folder> --seed {p['seed']} \
--num-train {p['num_train']} --num-val {p['num_val']} --num-unlabeled {p['num_unlabeled']} \
--size {p['size']}`

seed {p['seed']}; {p['num_train']} train + {p['num_val']} val labelled scenes and \
{p['num_unlabeled']} unlabelled images, {p['size']}x{p['size']} px.
Each scene: a cloudy background with clutter lines and {MIN_OBJECTS}-{MAX_OBJECTS} objects \
(radius {RADIUS_RANGE[0]}-{RADIUS_RANGE[1]} of the image, log-uniform), painted in order: \
later objects occlude earlier ones (at most half of an object is hidden); masks are the visible \
parts.
The class is the silhouette alone: every instance draws its texture family (period \
{TEXTURE_PERIOD[0]:g}-{TEXTURE_PERIOD[1]:g} px at 256 px), colours, size and rotation from pools \
shared by all classes; the background carries no class.

| class (category id = row) | train instances | val instances | \
{' | '.join(TEXTURES)} (train + val) |
|---|---|---|{'---|' * len(TEXTURES)}
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
                'textures': list(TEXTURES), 'stats': stats}
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
