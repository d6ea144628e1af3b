"""CocoMainObjectDataset: each image is labelled with its largest object's class."""
import json

import pytest

from dsc_mm.datasets.coco_main_object import CocoMainObjectDataset


def _coco(tmp_path):
    coco = dict(
        categories=[dict(id=7, name='b'), dict(id=3, name='a')],
        images=[dict(id=2, file_name='two.jpg'), dict(id=1, file_name='one.jpg'),
                dict(id=5, file_name='empty.jpg')],
        annotations=[dict(id=1, image_id=1, category_id=7, area=10.),
                     dict(id=2, image_id=1, category_id=3, area=30.),
                     dict(id=3, image_id=2, category_id=7, area=5.)])
    (tmp_path / 'ann.json').write_text(json.dumps(coco))
    return tmp_path


def test_labels_are_the_largest_object_in_sorted_category_order(tmp_path):
    root = _coco(tmp_path)
    dataset = CocoMainObjectDataset(ann_file='ann.json', data_root=str(root), data_prefix='imgs',
                                    metainfo=dict(classes=('a', 'b')), lazy_init=False)
    # Category 3 -> label 0, category 7 -> label 1; the image without objects is left out.
    assert [(d['img_path'].split('/')[-1], int(d['gt_label'])) for d in dataset] == [
        ('one.jpg', 0), ('two.jpg', 1)]


def test_class_count_mismatch_is_one_sentence(tmp_path):
    root = _coco(tmp_path)
    with pytest.raises(ValueError, match='has 2 categories but metainfo names 3 classes'):
        CocoMainObjectDataset(ann_file='ann.json', data_root=str(root), data_prefix='imgs',
                              metainfo=dict(classes=('a', 'b', 'c')))
