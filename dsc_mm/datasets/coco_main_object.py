"""Image-level labels from COCO instance annotations: the class of each image's largest object."""
import json
import os.path as osp
from typing import List

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS


@DATASETS.register_module()
class CocoMainObjectDataset(BaseDataset):
    """An image-classification view of a COCO instances file, for tiny linear evaluations.

    Each image is labelled with the category of its largest annotation (by ``area``); images
    without annotations are left out. On the procedural scenes (``coco/annotations/
    instances_{train,val}.json``) this gives a 6-class problem with one dominant object per
    image, a CPU-sized stand-in for ImageNet's object-centric labels.

    Args:
        ann_file (str): The COCO instances JSON (relative to ``data_root``).
        metainfo (dict): ``classes`` in the order of the sorted category ids.
        data_root (str): Dataset root.
        data_prefix (str | dict): Image folder (relative to ``data_root``), or
            ``dict(img_path=...)``.
        **kwargs: The other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``indices``, ``test_mode``...).
    """

    def load_data_list(self) -> List[dict]:
        with open(self.ann_file) as f:
            coco = json.load(f)
        label_of = {cat_id: i for i, cat_id in enumerate(sorted(c['id'] for c in coco['categories']))}
        classes = self._metainfo.get('classes')
        if classes is not None and len(classes) != len(label_of):
            raise ValueError(f'{self.ann_file} has {len(label_of)} categories but metainfo '
                             f'names {len(classes)} classes; give one class per category id.')
        largest = {}
        for ann in coco['annotations']:
            best = largest.get(ann['image_id'])
            if best is None or ann['area'] > best['area']:
                largest[ann['image_id']] = ann
        prefix = self.data_prefix['img_path']
        return [dict(img_path=osp.join(prefix, img['file_name']),
                     gt_label=label_of[largest[img['id']]['category_id']])
                for img in sorted(coco['images'], key=lambda im: im['id']) if img['id'] in largest]
