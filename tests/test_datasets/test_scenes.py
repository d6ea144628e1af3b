"""Procedural scenes: determinism, exact masks/boxes in every layout, balance, OpenMMLab loading."""
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dsc_mm.datasets import scenes
from dsc_mm.datasets.scenes import SCENE_CLASSES, SCENE_SEG_CLASSES, generate_scenes

SMALL = dict(num_train=16, num_val=6, num_unlabeled=4, size=128)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory) -> Path:
    """22 labelled scenes + 4 unlabelled images at 128 px (about 1 s)."""
    return generate_scenes(tmp_path_factory.mktemp('scenes') / 'scenes', seed=0, **SMALL)


def _coco(root, split):
    from pycocotools.coco import COCO
    return COCO(str(root / 'coco' / 'annotations' / f'instances_{split}.json'))


def _files(root: Path):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob('*')) if p.is_file()}


def _tight_box(mask):
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_layout(dataset):
    voc = dataset / 'VOCdevkit' / 'VOC2012'
    assert len(list((dataset / 'unlabeled').glob('*.jpg'))) == 4
    assert len(list((dataset / 'coco' / 'train').glob('*.jpg'))) == 16
    assert len(list(voc.glob('JPEGImages/*.jpg'))) == 22
    assert len(list(voc.glob('Annotations/*.xml'))) == 22
    assert len(list(voc.glob('SegmentationClass/*.png'))) == 22
    for split, count in (('train', 16), ('val', 6)):
        assert len(list((dataset / 'cityscapes' / 'leftImg8bit' / split / 'scenes')
                        .glob('*_leftImg8bit.png'))) == count
        assert len(list((dataset / 'cityscapes' / 'gtFine' / split / 'scenes')
                        .glob('*_gtFine_labelTrainIds.png'))) == count
    meta = json.loads((dataset / 'meta.json').read_text())
    assert meta['params'] == dict(SMALL, seed=0)
    assert meta['classes'] == list(SCENE_CLASSES)
    readme = (dataset / 'README.md').read_text()
    assert 'seed 0' in readme and all(name in readme for name in SCENE_CLASSES)
    image = cv2.imread(str(dataset / 'unlabeled' / '000000.jpg'))
    assert image.shape == (128, 128, 3)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    args = dict(num_train=3, num_val=2, num_unlabeled=2, size=64)
    first = generate_scenes(tmp_path / 'a', seed=3, **args)
    again = generate_scenes(tmp_path / 'b', seed=3, num_workers=2, **args)  # worker processes
    other = generate_scenes(tmp_path / 'c', seed=4, **args)
    files = _files(first)
    assert files == _files(again)
    other_files = _files(other)
    assert files.keys() == other_files.keys()
    images = [k for k in files if k.endswith('.jpg')]
    assert all(files[k] != other_files[k] for k in images)


def test_existing_dataset_is_reused_or_replaced(tmp_path):
    out = tmp_path / 'scenes'
    args = dict(num_train=2, num_val=1, num_unlabeled=1, size=64, seed=0)
    generate_scenes(out, **args)
    marker = out / 'coco' / 'train' / '000000.jpg'
    stamp = marker.stat().st_mtime_ns
    generate_scenes(out, **args)  # same parameters: nothing rewritten
    assert marker.stat().st_mtime_ns == stamp
    generate_scenes(out, **dict(args, num_train=3))  # other parameters: replaced
    assert json.loads((out / 'meta.json').read_text())['params']['num_train'] == 3
    assert len(list((out / 'coco' / 'train').glob('*.jpg'))) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ['scenes']  # no tmp/old folders left


def test_interrupted_run_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(scenes.writer, '_write_unlabeled', interrupt)
    with pytest.raises(KeyboardInterrupt):
        generate_scenes(tmp_path / 'scenes', num_train=2, num_val=1, num_unlabeled=1, size=64)
    assert list(tmp_path.iterdir()) == []


def test_stale_temporary_folder_is_removed(tmp_path):
    stale = tmp_path / 'scenes.tmp-999999999'  # no such process
    stale.mkdir()
    generate_scenes(tmp_path / 'scenes', num_train=1, num_val=1, num_unlabeled=0, size=64)
    assert not stale.exists()


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    out = tmp_path / 'mine'
    out.mkdir()
    (out / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match=str(out)):
        generate_scenes(out, num_train=1, num_val=1, num_unlabeled=0, size=64)
    assert (out / 'notes.txt').read_text() == 'keep me'


@pytest.mark.parametrize('split', ['train', 'val'])
def test_coco_masks_match_boxes_and_areas(dataset, split):
    coco = _coco(dataset, split)
    kinds = set()
    boxes_overlap = False
    for image_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert anns, 'every scene has at least one object'
        union = np.zeros((128, 128), bool)
        for ann in anns:
            kinds.add('rle' if isinstance(ann['segmentation'], dict) else 'polygon')
            mask = coco.annToMask(ann).astype(bool)
            assert ann['area'] == mask.sum() > 0
            assert _tight_box(mask) == ann['bbox']
            assert ann['iscrowd'] == 0 and 1 <= ann['category_id'] <= len(SCENE_CLASSES)
            assert not (union & mask).any(), 'visible masks must not overlap'
            union |= mask
        boxes = np.array([a['bbox'] for a in anns], float)
        x0, y0 = boxes[:, 0], boxes[:, 1]
        x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
        inter = (np.minimum(x1[:, None], x1) - np.maximum(x0[:, None], x0)).clip(0) * \
            (np.minimum(y1[:, None], y1) - np.maximum(y0[:, None], y0)).clip(0)
        boxes_overlap |= bool(np.triu(inter, 1).max() > 0)
    if split == 'train':
        assert kinds == {'polygon', 'rle'}
        assert boxes_overlap, 'some objects should occlude others'
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(SCENE_CLASSES)


def test_polygons_and_rle_decode_exactly():
    from pycocotools import mask as mask_utils
    _, objects = scenes.render_scene(scenes.scene_rng(0, 'train', 0), 96)
    ring = np.zeros((40, 40), np.uint8)
    cv2.circle(ring, (20, 20), 15, 1, -1)
    cv2.circle(ring, (20, 20), 7, 0, -1)
    staircase = np.tril(np.ones((12, 12), np.uint8)).astype(bool)
    pinched = np.zeros((8, 8), bool)
    pinched[1:4, 1:4] = pinched[4:7, 4:7] = True  # two squares touching at a corner
    masks = [obj.mask for obj in objects] + [ring.astype(bool), staircase, pinched]
    polygons = 0
    for mask in masks:
        rle = scenes.encode_rle(mask)
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), mask)
        polygon = scenes.mask_polygon(mask)
        if polygon is not None:
            polygons += 1
            decoded = mask_utils.decode(mask_utils.frPyObjects([polygon], *mask.shape))
            np.testing.assert_array_equal(decoded[..., 0].astype(bool), mask)
    assert polygons >= 2
    assert scenes.mask_polygon(staircase) is not None
    assert scenes.mask_polygon(ring.astype(bool)) is None  # a hole needs RLE
    two_pieces = np.zeros((20, 20), bool)
    two_pieces[2:6, 2:6] = two_pieces[10:15, 10:15] = True
    assert scenes.mask_polygon(two_pieces) is None


def test_class_balance(dataset):
    counts = np.zeros(len(SCENE_CLASSES), int)
    for split in ('train', 'val'):
        for ann in _coco(dataset, split).dataset['annotations']:
            counts[ann['category_id'] - 1] += 1
    assert counts.min() > 0, f'every class must appear: {counts}'
    assert counts.max() <= 3 * counts.min(), f'classes are unbalanced: {counts}'


def test_voc_xml_boxes_equal_coco_boxes(dataset):
    voc = dataset / 'VOCdevkit' / 'VOC2012'
    for split in ('train', 'val'):
        coco = _coco(dataset, split)
        names = []
        for image_id in coco.getImgIds():
            name = coco.loadImgs(image_id)[0]['file_name'][:-4]
            names.append(name)
            root = ET.parse(voc / 'Annotations' / f'{name}.xml').getroot()
            assert int(root.find('size/width').text) == 128
            objects = root.findall('object')
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            assert len(objects) == len(anns)
            for obj, ann in zip(objects, anns):
                assert obj.find('name').text == SCENE_CLASSES[ann['category_id'] - 1]
                assert obj.find('difficult').text == '0'
                box = [int(obj.find(f'bndbox/{k}').text) for k in ('xmin', 'ymin', 'xmax', 'ymax')]
                x, y, w, h = ann['bbox']
                assert [box[0] - 1, box[1] - 1, box[2], box[3]] == [x, y, x + w, y + h]
        for task in ('Main', 'Segmentation'):
            listed = (voc / 'ImageSets' / task / f'{split}.txt').read_text().split()
            assert listed == names
    trainval = (voc / 'ImageSets' / 'Main' / 'trainval.txt').read_text().split()
    assert len(trainval) == len(set(trainval)) == 22


def test_segmentation_labels_agree_with_instances(dataset):
    voc = dataset / 'VOCdevkit' / 'VOC2012'
    kernel = np.ones((3, 3), np.uint8)
    for split in ('train', 'val'):
        coco = _coco(dataset, split)
        for image_id in coco.getImgIds():
            name = coco.loadImgs(image_id)[0]['file_name'][:-4]
            exact_path = (dataset / 'cityscapes' / 'gtFine' / split / 'scenes' /
                          f'{name}_gtFine_labelTrainIds.png')
            exact = np.array(Image.open(exact_path))
            png = Image.open(voc / 'SegmentationClass' / f'{name}.png')
            assert png.mode == 'P'
            with_border = np.array(png)
            expected = np.zeros((128, 128), np.uint8)
            inst = np.zeros((128, 128), np.uint8)
            for k, ann in enumerate(coco.loadAnns(coco.getAnnIds(imgIds=image_id)), 1):
                mask = coco.annToMask(ann).astype(bool)
                expected[mask] = ann['category_id']
                inst[mask] = k
            np.testing.assert_array_equal(exact, expected)  # Cityscapes style: exact
            ignore = with_border == 255
            np.testing.assert_array_equal(with_border[~ignore], expected[~ignore])
            # VOC style: 255 only on the 2 px band where two instances (or background) meet
            edges = cv2.dilate(inst, kernel) != cv2.erode(inst, kernel)
            np.testing.assert_array_equal(ignore, edges)
            assert set(np.unique(with_border)) <= set(range(len(SCENE_SEG_CLASSES))) | {255}


def test_render_scene_objects_are_visible_parts():
    image, objects = scenes.render_scene(scenes.scene_rng(5, 'train', 1), 96)
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    inst = scenes.instance_map(objects, 96)
    for k, obj in enumerate(objects, 1):
        assert obj.mask.any()
        np.testing.assert_array_equal(inst == k, obj.mask)  # no later object overwrote it


def _scope(name):
    from mmengine.registry import DefaultScope
    return DefaultScope.overwrite_default_scope(name)


def test_mmdet_coco_and_voc_datasets_read_the_files(dataset):
    import mmdet.datasets  # noqa: F401  (registers datasets and transforms)
    from mmdet.registry import DATASETS
    det_pipeline = [dict(type='LoadImageFromFile'),
                    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                    dict(type='PackDetInputs')]
    with _scope('mmdet'):
        coco_set = DATASETS.build(dict(
            type='CocoDataset', data_root=str(dataset / 'coco'),
            ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
            metainfo=dict(classes=SCENE_CLASSES), pipeline=det_pipeline, test_mode=True))
        voc_set = DATASETS.build(dict(
            type='VOCDataset', data_root=str(dataset / 'VOCdevkit'),
            ann_file='VOC2012/ImageSets/Main/val.txt',
            data_prefix=dict(sub_data_root='VOC2012/'), metainfo=dict(classes=SCENE_CLASSES),
            pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                      dict(type='PackDetInputs')], test_mode=True))
        assert len(coco_set) == len(voc_set) == 6
        coco_item, voc_item = coco_set[0], voc_set[0]
    coco = _coco(dataset, 'val')
    anns = coco.loadAnns(coco.getAnnIds(imgIds=coco.getImgIds()[0]))
    gt = coco_item['data_samples'].gt_instances
    assert coco_item['inputs'].shape == (3, 128, 128)
    assert gt.labels.tolist() == [a['category_id'] - 1 for a in anns]
    masks = gt.masks.to_ndarray().astype(bool)
    for mask, ann in zip(masks, anns):
        assert _tight_box(mask) == ann['bbox']
    voc_gt = voc_item['data_samples'].gt_instances
    # mmdet subtracts 1 from all four VOC coordinates (xml_style.py, minus_one=True), so its
    # VOC boxes end on the last pixel while COCO's xyxy end one past it.
    np.testing.assert_array_equal(voc_gt.bboxes.tensor.numpy(),
                                  gt.bboxes.tensor.numpy() - [0, 0, 1, 1])
    assert voc_gt.labels.tolist() == gt.labels.tolist()


def test_mmseg_voc_and_cityscapes_style_datasets_read_the_files(dataset):
    import mmseg.datasets  # noqa: F401  (registers datasets and transforms)
    from mmseg.registry import DATASETS
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                dict(type='PackSegInputs')]
    # mmseg's PascalVOCDataset/CityscapesDataset only accept subsets of their own classes,
    # so the scenes are read by BaseSegDataset with the VOC and Cityscapes file conventions.
    with _scope('mmseg'):
        voc_set = DATASETS.build(dict(
            type='BaseSegDataset', data_root=str(dataset / 'VOCdevkit' / 'VOC2012'),
            ann_file='ImageSets/Segmentation/train.txt', img_suffix='.jpg',
            seg_map_suffix='.png',
            data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
            metainfo=dict(classes=SCENE_SEG_CLASSES), pipeline=pipeline))
        city_set = DATASETS.build(dict(
            type='BaseSegDataset', data_root=str(dataset / 'cityscapes'),
            img_suffix='_leftImg8bit.png', seg_map_suffix='_gtFine_labelTrainIds.png',
            data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
            metainfo=dict(classes=SCENE_SEG_CLASSES), pipeline=pipeline))
        assert len(voc_set) == len(city_set) == 16
        voc_item, city_item = voc_set[0], city_set[0]
    voc_seg = voc_item['data_samples'].gt_sem_seg.data[0].numpy()
    city_seg = city_item['data_samples'].gt_sem_seg.data[0].numpy()
    assert voc_item['inputs'].shape == city_item['inputs'].shape == (3, 128, 128)
    known = voc_seg != 255
    np.testing.assert_array_equal(voc_seg[known], city_seg[known])
    assert 0 < (~known).mean() < 0.2  # only the outline band is ignored
    assert set(np.unique(city_seg)) <= set(range(len(SCENE_SEG_CLASSES)))
    # The same scene: the JPEG and the PNG image agree up to JPEG error.
    diff = np.abs(voc_item['inputs'].int() - city_item['inputs'].int()).float().mean()
    assert diff < 8


def test_cli_writes_the_dataset_and_reports_progress(tmp_path, load_script, capsys):
    cli = load_script('tools/generate_scenes.py')
    args = ['--out', str(tmp_path / 'scenes'), '--num-train', '2', '--num-val', '1',
            '--num-unlabeled', '1', '--size', '64', '--workers', '1']
    cli.main(args)
    first = capsys.readouterr().out
    assert 'train' in first and '2/2' in first and 'wrote' in first
    assert (tmp_path / 'scenes' / 'meta.json').is_file()
    cli.main(args)
    assert 'up to date' in capsys.readouterr().out


def test_texture_is_drawn_independently_of_the_class():
    """A class is its silhouette: every class wears every texture family, none mostly one."""
    counts = np.zeros((len(SCENE_CLASSES), len(scenes.TEXTURES)), int)
    for index in range(60):
        _, objects = scenes.render_scene(scenes.scene_rng(0, 'train', index), 96)
        for obj in objects:
            counts[obj.label, scenes.TEXTURES.index(obj.texture)] += 1
    assert (counts > 0).all(), f'a class never wears some texture family:\n{counts}'
    share = counts / counts.sum(1, keepdims=True)
    assert share.max() < 0.4, f'a texture family nearly gives its class away:\n{counts}'


def test_meta_counts_textures_per_class(dataset):
    meta = json.loads((dataset / 'meta.json').read_text())
    assert meta['textures'] == list(scenes.TEXTURES)
    for split in ('train', 'val'):
        table = np.array(meta['stats'][split]['textures'])
        assert table.shape == (len(SCENE_CLASSES), len(scenes.TEXTURES))
        # every instance is counted once, under its own class
        np.testing.assert_array_equal(table.sum(1), meta['stats'][split]['instances'])
