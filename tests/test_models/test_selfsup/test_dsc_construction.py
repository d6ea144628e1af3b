"""What DSC's constructor refuses (one sentence each) and what it hands to its parts.

No forward pass: these run in milliseconds, so they also judge every constructor mutant of
``models_dsc`` (docs/mutation.md) before the slower step tests are reached.
"""
import re

import pytest
import torch
from mmpretrain.registry import MODELS

PM = dict(type='PrototypeSemanticHead', num_classes=4, feat_dim=16)


def _refused(message):
    """``pytest.raises`` matching the whole message, so a changed word fails too."""
    return pytest.raises(ValueError, match='^' + re.escape(message) + '$')


def test_momentum_above_one_half_is_refused_with_mmpretrains_convention(tiny):
    with _refused("DSC momentum=0.6 looks like MoCo's convention (m=0.999); mmpretrain uses "
                  'key = (1 - momentum) * key + momentum * query, so set momentum=0.001 '
                  '(= 1 - 0.999) in the model config.'):
        MODELS.build(tiny.dsc(momentum=0.6))
    # 0.5 itself is allowed (mmengine's EMA accepts it) and reaches the key encoder.
    assert MODELS.build(tiny.dsc(momentum=0.5)).encoder_k.momentum == 0.5
    assert MODELS.build(tiny.dsc(momentum=0.01)).encoder_k.momentum == 0.01


@pytest.mark.parametrize('name, ramp', [('semantic_ramp', (5, 4)),
                                        ('semantic_ramp_epochs', (2.5, 1.0))])
def test_a_ramp_that_ends_before_it_starts_is_refused(tiny, name, ramp):
    with _refused(f'{name}={ramp} ends before it starts; give (start, end) with end >= start.'):
        MODELS.build(tiny.dsc(**{name: list(ramp)}))  # a list, as a config file may give it
    # A ramp that starts and ends at once is a step, not an error.
    MODELS.build(tiny.dsc(**{name: (ramp[1], ramp[1])}))


def test_a_schedule_given_twice_is_refused(tiny):
    with _refused('DSC got both dense_start_iters=5 and dense_start_epochs=1; give only one '
                  'in the model config.'):
        MODELS.build(tiny.dsc(dense_start_iters=5, dense_start_epochs=1))
    with _refused('DSC got both semantic_ramp=(0, 3) and semantic_ramp_epochs=(1, 2); give '
                  'only one in the model config.'):
        MODELS.build(tiny.dsc(semantic_ramp=[0, 3], semantic_ramp_epochs=(1, 2)))
    # Zero iterations and the (0, 0) ramp are the defaults, i.e. not given.
    MODELS.build(tiny.dsc(dense_start_iters=0, dense_start_epochs=1))
    MODELS.build(tiny.dsc(semantic_ramp=[0, 0], semantic_ramp_epochs=(1, 2)))


def test_a_cap_below_what_k_means_needs_is_refused(tiny):
    km = dict(type='KMeansSemanticHead', num_classes=4, feat_dim=16, min_pixels_per_class=3)
    with _refused('DSC max_contrast_pixels=11 is below the 12 pixels the semantic head needs '
                  'to cluster (num_classes x min_pixels_per_class); raise max_contrast_pixels '
                  'or lower num_classes in the model config.'):
        MODELS.build(tiny.dsc(semantic_head=km, max_contrast_pixels=11))
    assert MODELS.build(tiny.dsc(semantic_head=km, max_contrast_pixels=12)).max_contrast_pixels \
        == 12
    # The PM head needs no clustering sample, and None is no cap.
    assert MODELS.build(tiny.dsc(semantic_head=PM, max_contrast_pixels=1)).max_contrast_pixels \
        == 1
    assert MODELS.build(tiny.dsc(max_contrast_pixels=None)).max_contrast_pixels is None
    # Without a semantic head nothing is clustered: any cap builds.
    MODELS.build(tiny.dsc(semantic_head=None, max_contrast_pixels=0))


def test_defaults_are_the_papers(tiny):
    model = MODELS.build(dict(type='DSC', backbone=tiny.backbone, neck=tiny.neck,
                              head=tiny.head, pixel_head=dict(type='PixelNeighbourHead')))
    # MoCo's 65,536 keys of dimension 128 in both queues, m = 0.999 in mmpretrain's convention.
    for queue in (model.instance_queue, model.pixel_queue):
        assert queue.queue.shape == (128, 65536)
    assert model.encoder_k.momentum == 0.001
    assert (model.instance_weight, model.pixel_weight) == (0.5, 0.5)
    assert model.semantic_head is None and model.semantic_weight == 0.
    assert (model.dense_start_iters, model.semantic_ramp) == (0, (0, 0))
    assert model.dense_start_epochs is None and model.semantic_ramp_epochs is None
    assert model.max_contrast_pixels == 256 * 49  # the paper's global pool at 8 x 32 images
    with_head = MODELS.build(dict(type='DSC', backbone=tiny.backbone, neck=tiny.neck,
                                  head=tiny.head, pixel_head=dict(type='PixelNeighbourHead'),
                                  semantic_head=PM))
    assert with_head.semantic_weight == 0.5


def test_the_parts_get_their_configs(tiny):
    model = MODELS.build(tiny.dsc(
        queue_len=24, feat_dim=16, instance_weight=0.25, pixel_weight=0.75, semantic_weight=2.,
        dense_start_iters=3, semantic_ramp=[1, 6], semantic_head=PM,
        pixel_head=dict(type='PixelNeighbourHead', cross_view_topk=3, same_view_topk=1),
        data_preprocessor=dict(mean=[1., 2., 3.], std=[4., 5., 6.])))
    for queue in (model.instance_queue, model.pixel_queue):
        assert queue.queue.shape == (16, 24)
    assert (model.instance_weight, model.pixel_weight, model.semantic_weight) == (0.25, 0.75, 2.)
    assert (model.dense_start_iters, model.semantic_ramp) == (3, (1, 6))
    assert (model.pixel_head.cross_view_topk, model.pixel_head.same_view_topk) == (3, 1)
    assert type(model.semantic_head).__name__ == 'PrototypeSemanticHead'
    # The key encoder is an EMA copy of backbone + neck, equal to them at the start.
    backbone_k, neck_k = model.encoder_k.module
    assert backbone_k is not model.backbone and neck_k is not model.neck
    for (name, p), (_, p_k) in zip(model.backbone.state_dict().items(),
                                   backbone_k.state_dict().items()):
        assert torch.equal(p, p_k), name
    assert type(neck_k).__name__ == 'DenseCLNeck'
    assert model.data_preprocessor.mean.flatten().tolist() == [1., 2., 3.]
    assert model.data_preprocessor.std.flatten().tolist() == [4., 5., 6.]


def test_pretrained_and_init_cfg_reach_the_base_model(tiny):
    init = dict(type='Kaiming', layer='Conv2d')
    assert MODELS.build(tiny.dsc(init_cfg=init)).init_cfg == init
    assert MODELS.build(tiny.dsc(pretrained='ckpt.pth')).init_cfg == dict(
        type='Pretrained', checkpoint='ckpt.pth')


def test_without_a_semantic_head_beta_is_zero(tiny):
    model = MODELS.build(tiny.dsc(semantic_head=None, semantic_weight=0.7))
    assert model.semantic_head is None and model.semantic_weight == 0.
    assert MODELS.build(tiny.dsc(semantic_weight=0.7)).semantic_weight == 0.7


def test_a_fresh_model_counts_from_zero_and_needs_resolving_only_with_epochs(tiny):
    model = MODELS.build(tiny.dsc())
    assert model.iter_count.dtype == torch.long and model.iter_count.shape == ()
    assert model.iter_count.item() == 0 and model.host_iter() == 0
    assert model.steps_per_epoch.dtype == torch.float64 and model.steps_per_epoch.item() == 0
    assert {'iter_count', 'steps_per_epoch'} <= set(model.state_dict())
    assert model.schedules_resolved
    epochs = [dict(dense_start_epochs=1), dict(semantic_ramp_epochs=(0, 1)),
              dict(semantic_head=dict(PM, freeze_prototypes_epochs=1))]
    for kwargs in epochs:
        model = MODELS.build(tiny.dsc(**kwargs))
        assert not model.schedules_resolved, kwargs
        model.resolve_schedules(4)
        assert model.schedules_resolved, kwargs
