"""FrozenEncoderDecoder: the backbone never changes through training, and the feature cache
gives the same logits and losses as the plain path."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE = REPO_ROOT / 'configs' / 'probe'
SIZE = 64


def _cfg() -> Config:
    cfg = Config.fromfile(str(PROBE / 'linear-probe_r18-d8-frozen_tiny_scenes-voc.py'))
    cfg.model.data_preprocessor.size = (SIZE, SIZE)
    cfg.model.decode_head.num_classes = 3
    return cfg


def _build(cfg: Config, **overrides):
    import dsc_mm.probes  # noqa: F401  (registers the probe's model and head)
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.update(overrides)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def _batch(seed: int, n: int = 2) -> dict:
    """What the dataloader gives the model: uint8 images and label maps."""
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        sample = SegDataSample(metainfo=dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, SIZE, SIZE), generator=g))
        samples.append(sample)
    images = [torch.randint(0, 256, (3, SIZE, SIZE), generator=g, dtype=torch.uint8)
              for _ in range(n)]
    return dict(inputs=images, data_samples=samples)


@pytest.fixture(scope='module')
def cfg():
    return _cfg()


def test_backbone_is_frozen_and_in_eval_mode(cfg):
    model = _build(cfg)
    model.train()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not any(m.training for m in model.backbone.modules())
    assert model.decode_head.training
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'decode_head.conv_seg.weight', 'decode_head.conv_seg.bias'}


def test_training_leaves_backbone_weights_and_bn_buffers_bit_identical(cfg):
    model = _build(cfg)
    # Non-default BN statistics: a backbone that silently updated them would change them.
    for name, buf in model.backbone.named_buffers():
        if 'running_mean' in name:
            buf.uniform_(-0.5, 0.5)
    before = copy.deepcopy(model.backbone.state_dict())
    head_before = copy.deepcopy(model.decode_head.state_dict())
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    for step in range(3):
        losses = model.train_step(_batch(step), optim_wrapper)  # mmengine's training step
        assert torch.isfinite(losses['loss'])
    after = model.backbone.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    # ...while the classifier and its normalisation learned.
    head_after = model.decode_head.state_dict()
    assert not torch.equal(head_after['conv_seg.weight'], head_before['conv_seg.weight'])
    assert not torch.equal(head_after['norm.running_mean'], head_before['norm.running_mean'])


def test_cached_logits_and_losses_equal_the_plain_path(cfg):
    cached = _build(cfg)
    plain = _build(cfg, cache_features=False)
    plain.load_state_dict(cached.state_dict())
    assert plain.feature_cache is None
    for model in (cached, plain):
        model.eval()
    first, second = _batch(10), _batch(11)
    # A batch of new images, the same again (all cache hits), then one seen and one new image.
    mixed = dict(inputs=[second['inputs'][0], first['inputs'][1]],
                 data_samples=[second['data_samples'][0], first['data_samples'][1]])
    for batch in (first, first, mixed):
        with torch.no_grad():
            data_c = cached.data_preprocessor(copy.deepcopy(batch), True)
            data_p = plain.data_preprocessor(copy.deepcopy(batch), True)
            torch.testing.assert_close(cached(**data_c, mode='tensor'),
                                       plain(**data_p, mode='tensor'), rtol=0, atol=1e-5)
            loss_c, loss_p = cached(**data_c, mode='loss'), plain(**data_p, mode='loss')
            torch.testing.assert_close(loss_c['decode.loss_ce'], loss_p['decode.loss_ce'],
                                       rtol=0, atol=1e-6)
            pred_c = cached.test_step(copy.deepcopy(batch))
            pred_p = plain.test_step(copy.deepcopy(batch))
            for a, b in zip(pred_c, pred_p):
                torch.testing.assert_close(a.seg_logits.data, b.seg_logits.data, rtol=0,
                                           atol=1e-5)
    # The plain model is the reference only if the cache was really used.
    stats = cached.cache_stats
    assert stats['misses'] == 3 and stats['hits'] > stats['misses']


def test_loading_weights_clears_the_cache(cfg):
    model, other = _build(cfg), _build(cfg)
    for p in other.backbone.parameters():
        p.data.normal_()
    model.eval()
    data = model.data_preprocessor(_batch(0), False)
    model(**data, mode='tensor')
    assert len(model.feature_cache) == 2
    model.load_state_dict(other.state_dict())
    assert len(model.feature_cache) == 0
    with torch.no_grad():
        torch.testing.assert_close(model(**data, mode='tensor'),
                                   other.eval()(**data, mode='tensor'), rtol=0, atol=1e-5)


def test_a_neck_is_refused_with_one_sentence(cfg):
    with pytest.raises(ValueError, match='takes no neck'):
        _build(cfg, neck=dict(type='Identity'))
