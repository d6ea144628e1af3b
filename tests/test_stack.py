"""The pinned OpenMMLab stack imports with mmcv's compiled ops, and its reference models train on CPU."""
import pytest
import torch
from mmengine.hub import get_config


def test_mmcv_compiled_ops_load():
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    feats = torch.arange(16.).view(1, 1, 4, 4)
    out = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=1, aligned=False)(
        feats, torch.tensor([[0., 0., 0., 3., 3.]]))
    assert out.shape == (1, 1, 2, 2)


def test_downstream_frameworks_accept_this_mmcv():
    # mmdet, mmseg and mmpretrain assert the mmcv version at import time.
    import mmdet.models  # noqa: F401
    import mmpretrain.models  # noqa: F401
    import mmseg.models  # noqa: F401


def test_env_report_has_no_problems():
    from dsc_mm.env import collect
    rows, problems = collect()
    assert problems == []
    assert dict(rows)['mmcv ops (nms, RoIAlign)'].startswith('OK')


def _one_step(model, data):
    model.train()
    data = model.data_preprocessor(data, training=True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)  # sums every '*loss*' entry, lists included
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert torch.isfinite(total) and grads
    return losses


def test_mmpretrain_densecl_forward_backward_cpu():
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    from mmpretrain.utils import register_all_modules
    register_all_modules()
    cfg = get_config('mmpretrain::densecl/densecl_resnet50_8xb32-coslr-200e_in1k.py')
    cfg.model.update(queue_len=32, feat_dim=16, backbone=dict(type='ResNet', depth=18),
                     neck=dict(type='DenseCLNeck', in_channels=512, hid_channels=32,
                               out_channels=16, num_grid=None))
    model = MODELS.build(cfg.model)
    views = [torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8) for _ in range(2)]
    losses = _one_step(model, dict(inputs=views, data_samples=[DataSample(), DataSample()]))
    assert set(losses) == {'loss_single', 'loss_dense'}


def test_mmdet_mask_rcnn_forward_backward_cpu():
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    from mmengine.structures import InstanceData
    register_all_modules()
    cfg = get_config('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    cfg.model.backbone.update(depth=18, init_cfg=None)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    model = MODELS.build(cfg.model)
    sample = DetDataSample(metainfo=dict(img_shape=(128, 128), ori_shape=(128, 128),
                                         pad_shape=(128, 128), scale_factor=(1., 1.),
                                         batch_input_shape=(128, 128)))
    masks = torch.zeros(1, 128, 128, dtype=torch.uint8)
    masks[0, 20:60, 30:90] = 1
    from mmdet.structures.mask import BitmapMasks
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[30., 20., 90., 60.]]),
                                       labels=torch.tensor([3]),
                                       masks=BitmapMasks(masks.numpy(), 128, 128))
    data = dict(inputs=[torch.randint(0, 255, (3, 128, 128), dtype=torch.uint8)],
                data_samples=[sample])
    losses = _one_step(model, data)
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(losses)


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'mmseg'])
def test_cross_package_config_bases_resolve(scope):
    # mmengine resolves `mmdet::` bases through pkg_resources (setuptools<81 pin).
    path = {'mmpretrain': 'mmpretrain::mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py',
            'mmdet': 'mmdet::pascal_voc/faster-rcnn_r50-caffe-c4_ms-18k_voc0712.py',
            'mmseg': 'mmseg::fcn/fcn_r50-d8_4xb4-20k_voc12aug-512x512.py'}[scope]
    assert get_config(path).default_scope == scope
