"""Helpers of the downstream config tests: config lists, data-root rewriting, smoke runs."""
import math
import os
from pathlib import Path

from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.utils import import_modules_from_strings

REPO_ROOT = Path(__file__).resolve().parents[2]
DET_DIR = REPO_ROOT / 'configs' / 'detection'
SEG_DIR = REPO_ROOT / 'configs' / 'segmentation'

# Every downstream config (leaf files only; _base_ holds the parts they are made of).
DET_CONFIGS = sorted(DET_DIR.glob('*.py'))
SEG_CONFIGS = sorted(SEG_DIR.glob('*.py'))
PROTOCOL_CONFIGS = [p for p in DET_CONFIGS + SEG_CONFIGS if 'tiny' not in p.name]
TINY_CONFIGS = [p for p in DET_CONFIGS + SEG_CONFIGS if 'tiny' in p.name]


def load(path) -> Config:
    return Config.fromfile(str(path))


def dataloaders(cfg: Config):
    """The train/val/test dataloader configs that exist in ``cfg``."""
    return [cfg[k] for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')
            if cfg.get(k)]


def registries(cfg: Config):
    """The (MODELS, DATASETS) registries of the config's scope, with its modules registered."""
    import_modules_from_strings(**cfg.custom_imports)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import DATASETS, MODELS
        from mmdet.utils import register_all_modules
    else:
        from mmseg.registry import DATASETS, MODELS
        from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    return MODELS, DATASETS


def build_model(cfg: Config):
    models, _ = registries(cfg)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return models.build(cfg.model)


# Default data roots of the configs and the environment variables that replace them.
ROOT_ENV = {'../shared/data': 'DSC_MM_DATA', 'data/scenes': 'DSC_MM_SCENES'}


def default_root(root: str) -> str:
    """What a config's ``{{$ENV:root}}`` data root resolves to in this environment."""
    return os.environ.get(ROOT_ENV[root], root)


def rebase_data(cfg: Config, old: str, new) -> Config:
    """Replace the data-root prefix ``old`` by ``new`` everywhere in ``cfg`` (in place).

    Configs hold their data root in each dataloader and in CocoMetric's ``ann_file``; this
    rewrites all of them, as ``--cfg-options`` would have to. ``old`` is a config default
    (``../shared/data``, ``data/scenes``), resolved through its environment variable.
    """
    old = default_root(old)
    datasets = {id(loader.dataset): loader.dataset for loader in dataloaders(cfg)}
    for dataset in datasets.values():
        assert dataset.data_root.startswith(old), (dataset.data_root, old)
        dataset.data_root = str(new) + dataset.data_root[len(old):]
    for key in ('val_evaluator', 'test_evaluator'):
        evaluator = cfg.get(key)
        if evaluator and str(evaluator.get('ann_file', '')).startswith(old):
            evaluator.ann_file = str(new) + evaluator.ann_file[len(old):]
    return cfg


def run_tiny(cfg: Config, work_dir, iters: int = 1, val_images: int = 1):
    """Train ``cfg`` for ``iters`` iterations, then validate on ``val_images`` images, in
    ``work_dir``; return ``(runner, scalars)`` with the message hub's last scalar values."""
    from mmengine.runner import Runner
    cfg.work_dir = str(work_dir)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = iters
    cfg.val_dataloader.dataset.indices = val_images
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = {k: v.current() for k, v in runner.message_hub.log_scalars.items()}
    return runner, scalars


# What a tiny run must produce: every loss term of the model, and the protocol's metrics.
VOC_METRICS = ('pascal_voc/mAP', 'pascal_voc/AP50', 'pascal_voc/AP75')
COCO_METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/segm_mAP',
                'coco/segm_mAP_50', 'coco/segm_mAP_75')
FASTER_LOSSES = ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox')
MASK_LOSSES = FASTER_LOSSES + ('loss_mask', )


def run_tiny_detection(cfg: Config, work_dir, losses, metrics):
    """One training iteration and a validation pass of a tiny detection config, checked."""
    # An untrained head scores 80 COCO classes ~1/81 each, below the 0.05 threshold: keep every
    # detection so that the metric path runs on real predictions.
    cfg.model.test_cfg.rcnn.score_thr = 0.0
    runner, scalars = run_tiny(cfg, work_dir)
    # Every loss term of the model was computed, finite and positive.
    for name in losses + ('loss', ):
        value = scalars[f'train/{name}']
        assert math.isfinite(value) and value > 0, (name, value)
    # The protocol's metrics were computed (random init: near 0, but valid fractions).
    for name in metrics:
        assert 0 <= scalars[f'val/{name}'] <= 1, (name, scalars.get(f'val/{name}'))
    if 'pascal_voc/mAP' in metrics:
        # COCO-style AP = the mean of the 11-point APs at IoU 0.50, 0.55, ..., 0.95 (each
        # rounded to 3 decimals by VOCMetric).
        per_iou = [scalars[f'val/pascal_voc/AP{iou}'] for iou in range(50, 100, 5)]
        assert abs(scalars['val/pascal_voc/mAP'] - sum(per_iou) / 10) <= 5e-4
    assert (Path(work_dir) / 'iter_1.pth').is_file() and runner.iter == 1
    # Ranges alone cannot tell a wired metric from a broken one: ground truth given as the
    # prediction must score perfectly (an evaluator reading another annotation file, class
    # list or coordinate frame than the dataset does not).
    for name, value in oracle_metrics(runner, _gt_as_detections).items():
        if name in metrics:
            assert value == 1.0, (name, value)
    return runner


def _gt_as_detections(sample) -> None:
    """Ground-truth instances as confident predictions (masks as an (N, H, W) tensor)."""
    import torch
    pred = sample.gt_instances.clone()
    pred.scores = torch.ones(len(pred))
    if 'masks' in pred:
        pred.masks = torch.from_numpy(pred.masks.to_ndarray()).bool()
    sample.pred_instances = pred


def _gt_as_segmentation(sample) -> None:
    from mmengine.structures import PixelData
    sample.pred_sem_seg = PixelData(data=sample.gt_sem_seg.data.clone())


def oracle_metrics(runner, predict) -> dict:
    """The runner's validation metrics when ``predict`` turns each sample's ground truth
    into its prediction (in place), over the WHOLE validation set: CocoMetric scores every
    image of its annotation file, whatever subset the loader had."""
    import copy
    loader_cfg = copy.deepcopy(runner.cfg.val_dataloader)
    loader_cfg.dataset.pop('indices', None)
    loader = runner.build_dataloader(loader_cfg)
    evaluator = runner.val_evaluator
    for batch in loader:
        samples = batch['data_samples']
        for sample in samples:
            predict(sample)
        evaluator.process(samples, batch)
    return evaluator.evaluate(len(loader.dataset))


def run_tiny_segmentation(cfg: Config, work_dir, num_classes: int):
    """One training iteration and a validation pass of a tiny segmentation config, checked."""
    runner, scalars = run_tiny(cfg, work_dir)
    # Both heads' cross-entropy (decode + auxiliary), finite and about log(num_classes) at
    # random init: the labels reached the loss in range (255 ignored, no class >= num_classes).
    for name in ('decode.loss_ce', 'aux.loss_ce'):
        value = scalars[f'train/{name}']
        assert math.isfinite(value) and 0 < value < 3 * math.log(num_classes), (name, value)
    assert 0 <= scalars['val/mIoU'] <= 100
    assert (Path(work_dir) / 'iter_1.pth').is_file() and runner.iter == 1
    assert oracle_metrics(runner, _gt_as_segmentation)['mIoU'] == 100
    return runner
