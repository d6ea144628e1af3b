"""Pascal VOC as detectron2 reads it: "difficult" boxes are trained on, ignored only when scoring."""
from typing import List, Union

from mmdet.datasets import VOCDataset
from mmdet.registry import DATASETS


@DATASETS.register_module()
class VOCTrainDifficultDataset(VOCDataset):
    """:class:`mmdet.datasets.VOCDataset` that keeps "difficult" boxes as training targets.

    mmdet's ``XMLDataset`` gives difficult objects ``ignore_flag=1`` in every mode, so
    ``PackDetInputs`` moves them out of the training targets. detectron2's VOC loader (the
    protocol of the SSL papers) keeps them for training; its evaluator, like mmdet's
    ``VOCMetric``, ignores them. Here a training dataset (``test_mode=False``) clears the flag;
    a test dataset is unchanged, so ``VOCMetric`` still ignores difficult boxes.

    Without ``filter_cfg.bbox_min_size`` the only source of ``ignore_flag=1`` in
    ``XMLDataset`` is the difficult tag, which is why the flag can be cleared as a whole; with
    it, small boxes would be revived too, so that combination is refused.
    """

    def __init__(self, *args, **kwargs) -> None:
        filter_cfg = kwargs.get('filter_cfg') or {}
        if not kwargs.get('test_mode', False) and filter_cfg.get('bbox_min_size') is not None:
            raise ValueError(
                f'VOCTrainDifficultDataset cannot tell difficult boxes from boxes below '
                f"filter_cfg.bbox_min_size={filter_cfg['bbox_min_size']}; remove bbox_min_size "
                f'or use VOCDataset.')
        super().__init__(*args, **kwargs)

    def parse_data_info(self, img_info: dict) -> Union[dict, List[dict]]:
        data_info = super().parse_data_info(img_info)
        if not self.test_mode:
            for instance in data_info['instances']:
                instance['ignore_flag'] = 0
        return data_info
