"""DSC's schedules: epochs resolved to optimizer steps, counted per optimizer step, and no
semantic cost while beta is 0."""
import pytest
import torch
from mmengine.dataset import BaseDataset
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from dsc_mm.engine.hooks import steps_per_epoch
from dsc_mm.models.selfsup import dsc as dsc_module

IMAGENET = 1281167


def _pm(tiny, **kwargs):
    return dict(type='PrototypeSemanticHead', num_classes=4, feat_dim=tiny.feat_dim, **kwargs)


@pytest.mark.parametrize('gpus', [8, 64])
def test_epoch_schedules_mean_the_same_epochs_at_8_and_64_gpus(tiny, gpus):
    model = MODELS.build(tiny.dsc(dense_start_epochs=2, semantic_ramp_epochs=(2, 4),
                                  semantic_head=_pm(tiny, freeze_prototypes_epochs=3)))
    steps = steps_per_epoch(IMAGENET, batch_size=32, world_size=gpus)
    model.resolve_schedules(steps)
    resolved = (model.dense_start_iters, *model.semantic_ramp,
                model.semantic_head.freeze_prototypes_iters)
    for iters, epochs in zip(resolved, (2, 2, 4, 3)):
        assert abs(iters / steps - epochs) <= 1 / steps  # within one optimizer step
    if gpus == 8:  # DenseCL's warm-up: 10,000 iterations at batch 256
        assert abs(model.dense_start_iters - 10000) < 20


def test_paper_configs_state_their_schedules_in_epochs(repo_root):
    from mmengine.config import Config
    cfgs = {alg: Config.fromfile(str(repo_root / 'configs' / 'pretrain' /
                                     f'{alg}_resnet50_8xb32-coslr-200e_in1k.py'))
            for alg in ('dsc-km', 'dsc-pm')}
    for cfg in cfgs.values():
        assert cfg.model.dense_start_epochs == 2 and cfg.model.semantic_ramp_epochs == (2, 4)
        assert 'dense_start_iters' not in cfg.model and 'semantic_ramp' not in cfg.model
        assert dict(type='DSCScheduleHook') in cfg.custom_hooks
    assert cfgs['dsc-pm'].model.semantic_head.freeze_prototypes_epochs == 3


def test_unresolved_or_doubled_schedules_are_refused(tiny):
    model = MODELS.build(tiny.dsc(dense_start_epochs=1))
    with pytest.raises(RuntimeError, match='DSCScheduleHook'):
        model.loss([torch.randn(2, 3, 64, 64) for _ in range(2)], None)
    with pytest.raises(ValueError, match='dense_start_epochs'):
        MODELS.build(tiny.dsc(dense_start_iters=5, dense_start_epochs=1))
    with pytest.raises(ValueError, match='freeze_prototypes_epochs'):
        MODELS.build(tiny.dsc(semantic_head=_pm(tiny, freeze_prototypes_iters=5,
                                                freeze_prototypes_epochs=1)))


class _Views(BaseDataset):
    """8 random two-view samples, already tensors (no pipeline)."""

    def __init__(self):
        super().__init__(serialize_data=False, lazy_init=True)
        self._fully_initialized = True
        self.data_list = [dict(idx=i) for i in range(8)]

    def __getitem__(self, idx):
        gen = torch.Generator().manual_seed(idx)
        return dict(inputs=[torch.rand(3, 64, 64, generator=gen) * 255 for _ in range(2)],
                    data_samples=DataSample())

    def __len__(self):
        return 8


def test_hook_resolves_epochs_and_counts_optimizer_steps_under_accumulation(tiny, tmp_path):
    model = tiny.dsc(dense_start_epochs=1, semantic_ramp_epochs=(1, 2),
                     data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[128] * 3,
                                            std=[64] * 3))
    runner = Runner(
        model=model, work_dir=str(tmp_path),
        train_dataloader=dict(dataset=_Views(), batch_size=2, num_workers=0,
                              sampler=dict(type='InfiniteSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01), accumulative_counts=2),
        train_cfg=dict(by_epoch=False, max_iters=4),
        default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='DSCScheduleHook')],
        experiment_name=f'dsc-schedule-{tmp_path.name}', default_scope='mmpretrain')
    runner.train()
    dsc = runner.model
    # 8 images / (batch 2 x 1 process x 2 accumulated) = 2 optimizer steps per epoch.
    assert (dsc.dense_start_iters, dsc.semantic_ramp) == (2, (2, 4))
    assert dsc.iter_count.item() == 2  # 4 iterations, 2 optimizer steps
    assert dsc.host_iter() == 2


def test_semantic_term_costs_nothing_before_its_ramp(tiny, monkeypatch):
    model = MODELS.build(tiny.dsc(semantic_ramp=(2, 4)))
    calls = []
    loss = model.semantic_head.loss
    monkeypatch.setattr(model.semantic_head, 'loss', lambda *a: calls.append('head') or loss(*a))
    pool = dsc_module.bounded_pixel_pool
    monkeypatch.setattr(dsc_module, 'bounded_pixel_pool',
                        lambda *a, **k: calls.append('pool') or pool(*a, **k))
    torch.manual_seed(0)
    keys = []
    for _ in range(4):
        keys.append(set(model.loss([torch.randn(2, 3, 64, 64) for _ in range(2)], None)))
    # Steps 0-2 have beta = 0 (the ramp starts at 2): no pool, no clustering, no logits.
    assert calls == ['pool', 'head']
    assert 'loss_semantic' not in keys[2] and 'loss_semantic' in keys[3]
