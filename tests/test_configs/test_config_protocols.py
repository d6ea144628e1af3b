"""The protocol configs carry every number of the transfer protocol tables.

Expected values are the ones of /work/shared/docs/method.md ("Transfer protocols") and
transfer_protocols.md (Detection / Segmentation sections), i.e. MoCo's and DenseCL's detectron2 /
mmseg settings. A config that drifts from the papers' protocol fails here.
"""
import pytest

from config_helpers import DET_DIR, SEG_DIR, load

TORCHVISION_MEAN = [123.675, 116.28, 103.53]
TORCHVISION_STD = [58.395, 57.12, 57.375]
COCO_STYLE_IOUS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]

VOC_DET = DET_DIR / 'faster-rcnn_r50-c4-syncbn_ms-24k_voc0712.py'
COCO_MASK = DET_DIR / 'mask-rcnn_r50-fpn-syncbn_1x_coco.py'
VOC_SEG = SEG_DIR / 'fcn_r50-d8-plain-syncbn_20k_voc12aug-512x512.py'
CITYSCAPES_SEG = SEG_DIR / 'fcn_r50-d8-plain-syncbn_40k_cityscapes-769x769.py'


def _by_type(items, type_name):
    found = [item for item in items if item['type'] == type_name]
    assert len(found) == 1, f'expected one {type_name} in {items}'
    return found[0]


def _assert_ssl_backbone(backbone, depth=50):
    """Torchvision-style ResNet, SyncBN, nothing frozen, BN statistics updated, random init."""
    assert backbone.type == 'ResNet' and backbone.depth == depth
    assert backbone.style == 'pytorch'
    assert backbone.norm_cfg == dict(type='SyncBN', requires_grad=True)
    assert backbone.frozen_stages == -1
    assert backbone.norm_eval is False
    assert backbone.init_cfg is None


def _train_datasets(cfg):
    dataset = cfg.train_dataloader.dataset
    return dataset.datasets if dataset.type == 'ConcatDataset' else [dataset]


@pytest.fixture(scope='module')
def voc_det():
    return load(VOC_DET)


@pytest.fixture(scope='module')
def coco_mask():
    return load(COCO_MASK)


def test_voc_detection_model(voc_det):
    model = voc_det.model
    _assert_ssl_backbone(model.backbone)
    # C4: res2-res4 in the backbone, res5 as the RoI head with MoCo's extra norm after it.
    assert model.backbone.num_stages == 3 and model.backbone.out_indices == (2, )
    head = model.roi_head.shared_head
    assert head.type == 'ResLayerExtraNorm' and head.stage == 3 and head.depth == 50
    assert head.style == 'pytorch'
    assert head.norm_cfg == dict(type='SyncBN', requires_grad=True)
    assert head.norm_eval is False
    assert head.init_cfg is None
    assert model.roi_head.bbox_head.num_classes == 20
    pre = model.data_preprocessor
    assert pre.mean == TORCHVISION_MEAN and pre.std == TORCHVISION_STD and pre.bgr_to_rgb is True
    # Batches padded to their largest image only, as detectron2's C4 (no size divisibility).
    assert pre.pad_size_divisor == 1


def _assert_detectron2_schedule(cfg, max_iters, warmup_iters, milestones):
    """detectron2's iteration schedule: batch 16 (8 GPUs x 2), SGD lr 0.02, momentum 0.9,
    wd 1e-4, linear warm-up from 0.001 x lr, lr x 0.1 at each milestone."""
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.train_cfg.max_iters == max_iters
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.02, momentum=0.9,
                                               weight_decay=0.0001)
    warmup = _by_type(cfg.param_scheduler, 'LinearLR')
    assert (warmup.start_factor, warmup.begin, warmup.end, warmup.by_epoch) == \
        (0.001, 0, warmup_iters, False)
    steps = _by_type(cfg.param_scheduler, 'MultiStepLR')
    assert steps.milestones == milestones and steps.gamma == 0.1 and not steps.by_epoch
    assert steps.end == max_iters


def test_voc_detection_schedule(voc_det):
    # 24k iterations, warm-up over 100 iterations, steps at 18k and 22k.
    _assert_detectron2_schedule(voc_det, 24000, 100, [18000, 22000])


def test_voc_detection_data(voc_det):
    # Train on VOC07 trainval + VOC12 trainval (difficult boxes included, as detectron2's
    # loader), test on VOC07 test (mmdet's VOCDataset: difficult boxes ignored by VOCMetric).
    train_sets = _train_datasets(voc_det)
    assert {d.type for d in train_sets} == {'VOCTrainDifficultDataset'}
    assert voc_det.test_dataloader.dataset.type == 'VOCDataset'
    assert voc_det.test_dataloader.dataset.test_mode is True
    assert sorted(d.ann_file for d in train_sets) == [
        'VOC2007/ImageSets/Main/trainval.txt', 'VOC2012/ImageSets/Main/trainval.txt']
    assert voc_det.test_dataloader.dataset.ann_file == 'VOC2007/ImageSets/Main/test.txt'
    # Multi-scale training: short side 480..800 in steps of 32; test at 800.
    for dataset in train_sets:
        resize = _by_type(dataset.pipeline, 'RandomChoiceResize')
        assert sorted(min(s) for s in resize.scales) == list(range(480, 801, 32))
        assert all(max(s) == 1333 for s in resize.scales) and resize.keep_ratio
    test_resize = _by_type(voc_det.test_dataloader.dataset.pipeline, 'Resize')
    assert min(test_resize.scale) == 800 and test_resize.keep_ratio


def test_voc_detection_metric(voc_det):
    # detectron2's VOC evaluator: VOC07 11-point AP averaged over IoU 0.50:0.05:0.95.
    for evaluator in (voc_det.val_evaluator, voc_det.test_evaluator):
        assert evaluator.type == 'VOCMetric'
        assert evaluator.eval_mode == '11points'
        assert evaluator.iou_thrs == pytest.approx(COCO_STYLE_IOUS)


def test_coco_mask_rcnn(coco_mask):
    model = coco_mask.model
    _assert_ssl_backbone(model.backbone)
    sync_bn = dict(type='SyncBN', requires_grad=True)
    # SyncBN also in FPN and both heads; 4conv1fc box head (detectron2 protocol).
    assert model.neck.type == 'FPN' and model.neck.norm_cfg == sync_bn
    assert model.roi_head.bbox_head.type == 'Shared4Conv1FCBBoxHead'
    assert model.roi_head.bbox_head.norm_cfg == sync_bn
    assert model.roi_head.mask_head.norm_cfg == sync_bn
    pre = model.data_preprocessor
    assert pre.mean == TORCHVISION_MEAN and pre.std == TORCHVISION_STD and pre.bgr_to_rgb is True
    # detectron2's 1x: 90k iterations, warm-up over 1000 iterations, steps at 60k/80k (not
    # mmdet's 12 epochs, steps 8/11), evaluated once at the end.
    _assert_detectron2_schedule(coco_mask, 90000, 1000, [60000, 80000])
    assert coco_mask.train_cfg.val_interval == 90000
    assert coco_mask.train_dataloader.sampler.type == 'InfiniteSampler'
    # bbox and mask AP on val2017.
    assert set(coco_mask.val_evaluator.metric) == {'bbox', 'segm'}
    assert coco_mask.val_dataloader.dataset.ann_file.endswith('instances_val2017.json')


@pytest.mark.parametrize('path, crop, iters, per_gpu, total', [
    (VOC_SEG, (512, 512), 20000, 4, 16),  # 4 GPUs x 4
    (CITYSCAPES_SEG, (769, 769), 40000, 2, 8),  # 4 GPUs x 2, as mmseg's recipe
])
def test_fcn_protocols(path, crop, iters, per_gpu, total):
    cfg = load(path)
    backbone = cfg.model.backbone
    # Plain stem (not mmseg's ResNetV1c deep stem), dilated D8 layout, SyncBN, random init.
    assert backbone.type == 'ResNet' and backbone.depth == 50 and backbone.style == 'pytorch'
    assert backbone.dilations == (1, 1, 2, 4) and backbone.strides == (1, 2, 1, 1)
    assert backbone.contract_dilation is True
    assert backbone.norm_cfg == dict(type='SyncBN', requires_grad=True)
    assert backbone.norm_eval is False
    assert backbone.init_cfg is None and cfg.model.pretrained is None
    # FCN head: 2 convs of 512 channels, concat input, dropout 0.1; aux FCN on stage 3, 0.4.
    head, aux = cfg.model.decode_head, cfg.model.auxiliary_head
    assert (head.type, head.num_convs, head.channels, head.concat_input, head.dropout_ratio) \
        == ('FCNHead', 2, 512, True, 0.1)
    assert aux.type == 'FCNHead' and aux.in_index == 2 and aux.in_channels == 1024
    assert aux.loss_decode.loss_weight == 0.4
    # torchvision RGB statistics.
    pre = cfg.model.data_preprocessor
    assert pre.mean == TORCHVISION_MEAN and pre.std == TORCHVISION_STD and pre.bgr_to_rgb is True
    # Crops, resize ratio 0.5-2.0.
    assert pre.size == crop
    pipeline = cfg.train_dataloader.dataset.get('pipeline') or \
        cfg.train_dataloader.dataset.datasets[0].pipeline
    assert _by_type(pipeline, 'RandomCrop').crop_size == crop
    assert _by_type(pipeline, 'RandomResize').ratio_range == (0.5, 2.0)
    # Schedule: SGD lr 0.01 momentum 0.9 wd 5e-4, poly 0.9 down to 1e-4.
    assert cfg.train_cfg.max_iters == iters
    assert cfg.train_dataloader.batch_size == per_gpu and per_gpu * 4 == total
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.01, momentum=0.9,
                                               weight_decay=0.0005)
    poly = _by_type(cfg.param_scheduler, 'PolyLR')
    assert (poly.power, poly.eta_min, poly.end) == (0.9, 1e-4, iters)
    assert cfg.val_evaluator.iou_metrics == ['mIoU']


def test_voc12aug_data():
    cfg = load(VOC_SEG)
    # VOC12 train + SBD aug, val on VOC12 val.
    seg_maps = sorted(d.data_prefix.seg_map_path for d in cfg.train_dataloader.dataset.datasets)
    assert seg_maps == ['SegmentationClass', 'SegmentationClassAug']
    assert cfg.val_dataloader.dataset.ann_file == 'ImageSets/Segmentation/val.txt'
    assert cfg.model.test_cfg.mode == 'whole'
    assert cfg.model.decode_head.num_classes == 21


def test_cityscapes_alignment_and_slide():
    cfg = load(CITYSCAPES_SEG)
    assert cfg.model.decode_head.align_corners is True
    assert cfg.model.auxiliary_head.align_corners is True
    assert cfg.model.test_cfg == dict(mode='slide', crop_size=(769, 769), stride=(513, 513))
    assert cfg.model.decode_head.num_classes == 19


@pytest.mark.parametrize('path', [VOC_DET, COCO_MASK], ids=lambda p: p.name)
def test_detection_has_detectron2_solver_and_bn_habits(path):
    cfg = load(path)
    # SOLVER.WEIGHT_DECAY_NORM = 0: no decay on norm layers (the rest keeps 1e-4).
    assert cfg.optim_wrapper.paramwise_cfg == dict(norm_decay_mult=0.)
    # TEST.PRECISE_BN: 200 iterations (at the protocol's total batch 16) before evaluating.
    hooks = [h for h in cfg.custom_hooks if h.type == 'PreciseBNBeforeEvalHook']
    assert hooks == [dict(type='PreciseBNBeforeEvalHook', num_iters=200)]


def test_norm_layers_get_no_weight_decay():
    """The optimizer built from the config: norm weights/biases at wd 0, convs at 1e-4."""
    from mmengine.optim import build_optim_wrapper
    from torch import nn

    cfg = load(VOC_DET)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.SyncBatchNorm(4))
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g['weight_decay'] for g in optim.param_groups for p in g['params']}
    assert decay[id(model[0].weight)] == 0.0001
    for norm in (model[1], model[2]):
        assert decay[id(norm.weight)] == 0.0 and decay[id(norm.bias)] == 0.0


def test_paper_suite_launch_matches_the_configs():
    """Each paper protocol's GPU count x the config's per-GPU batch is its total batch, the
    one its lr is for; VOC detection and VOC12aug segmentation average 5 seeds (DenseCL), the
    others run once."""
    from config_helpers import REPO_ROOT
    from dsc_mm.benchmark.suites import PAPER
    launch = {}
    for protocol in PAPER.protocols:
        cfg = load(REPO_ROOT / protocol.config)
        assert protocol.gpus * cfg.train_dataloader.batch_size == protocol.total_batch
        assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=protocol.total_batch)
        launch[protocol.key] = (protocol.gpus, protocol.total_batch, protocol.seeds)
    assert launch == {'voc-det': (8, 16, 5), 'coco-det': (8, 16, 1), 'voc-seg': (4, 16, 5),
                      'cityscapes-seg': (4, 8, 1), 'in1k-linear': (8, 256, 1)}
