"""The mIoU of a trained segmentation checkpoint, computed without mmseg's IoUMetric (the
independent reference of the probe cell test in test_determinism.py)."""
import torch


def miou_of(work_dir: str, checkpoint: str, config: str) -> float:
    """mIoU (%) of ``checkpoint`` on the validation set of the config dumped in ``work_dir``:
    per-class IoU from one confusion matrix over all images (label 255 ignored), averaged over
    the classes that occur in the labels or the predictions, as mmseg's IoUMetric defines it."""
    import os.path as osp

    import numpy as np
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import dsc_mm.probes  # noqa: F401  (registers the probe)
    from dsc_mm.utils import load_checkpoint_file
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(osp.join(work_dir, osp.basename(config)))
    num_classes = cfg.model.decode_head.num_classes
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
        model.load_state_dict(load_checkpoint_file(checkpoint)['state_dict'])
        model.eval()
        loader = Runner.build_dataloader(cfg.val_dataloader)
        with torch.no_grad():
            for batch in loader:
                for sample in model.test_step(batch):
                    pred = sample.pred_sem_seg.data.flatten().numpy()
                    gt = sample.gt_sem_seg.data.flatten().numpy()
                    keep = gt != 255
                    confusion += np.bincount(num_classes * gt[keep] + pred[keep],
                                             minlength=num_classes ** 2).reshape(
                                                 num_classes, num_classes)
    intersect = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersect
    present = union > 0
    return float(100 * np.mean(intersect[present] / union[present]))
