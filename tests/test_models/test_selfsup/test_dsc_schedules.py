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


def test_a_prototype_freeze_given_twice_is_refused(tiny):
    # The model's own schedules: test_dsc_construction.py and test_dsc_counter.py.
    with pytest.raises(ValueError, match='freeze_prototypes_epochs'):
        MODELS.build(tiny.dsc(semantic_head=_pm(tiny, freeze_prototypes_iters=5,
                                                freeze_prototypes_epochs=1)))


class _Views(BaseDataset):
    """``size`` random two-view samples, already tensors (no pipeline)."""

    def __init__(self, size=8):
        super().__init__(serialize_data=False, lazy_init=True)
        self._fully_initialized = True
        self.data_list = [dict(idx=i) for i in range(size)]

    def __getitem__(self, idx):
        gen = torch.Generator().manual_seed(idx)
        return dict(inputs=[torch.rand(3, 64, 64, generator=gen) * 255 for _ in range(2)],
                    data_samples=DataSample())

    def __len__(self):
        return len(self.data_list)


def _runner_cfg(tiny, work_dir, max_iters, size=8, hooks=True, **runner_kwargs):
    model = tiny.dsc(dense_start_epochs=1, semantic_ramp_epochs=(1, 2),
                     data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[128] * 3,
                                            std=[64] * 3))
    cfg = dict(
        model=model, work_dir=str(work_dir),
        train_dataloader=dict(dataset=_Views(size), batch_size=2, num_workers=0,
                              sampler=dict(type='InfiniteSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='DSCScheduleHook')] if hooks else [],
        experiment_name=f'dsc-schedule-{work_dir.name}-{max_iters}', default_scope='mmpretrain')
    cfg.update(runner_kwargs)
    return cfg


def test_hook_resolves_epochs_and_the_counter_counts_steps(tiny, tmp_path):
    runner = Runner(**_runner_cfg(tiny, tmp_path, max_iters=3))
    runner.train()
    dsc = runner.model
    # 8 images / (batch 2 x 1 process) = 4 optimizer steps per epoch.
    assert (dsc.dense_start_iters, dsc.semantic_ramp) == (4, (4, 8))
    assert dsc.iter_count.item() == 3 and dsc.host_iter() == 3
    assert dsc.steps_per_epoch.item() == 4


def test_resuming_an_8_gpu_checkpoint_at_64_gpus_keeps_the_epochs_done(tiny, tmp_path,
                                                                         monkeypatch):
    from dsc_mm.engine.hooks import dsc_schedule

    # 8 simulated GPUs x 2 images, 256 images: 16 steps per epoch; stop after half an epoch.
    monkeypatch.setattr(dsc_schedule, 'get_world_size', lambda: 8)
    first = Runner(**_runner_cfg(tiny, tmp_path, max_iters=8, size=256, default_hooks=dict(
        checkpoint=dict(type='CheckpointHook', interval=8, by_epoch=False))))
    first.train()
    assert first.model.iter_count.item() == 8 and first.model.dense_start_iters == 16

    # Resumed at 64 simulated GPUs: 2 steps per epoch; half an epoch is 1 step, not 8.
    monkeypatch.setattr(dsc_schedule, 'get_world_size', lambda: 64)
    second = Runner(**_runner_cfg(tiny, tmp_path, max_iters=9, size=256, resume=True,
                                  load_from=str(tmp_path / 'iter_8.pth')))
    seen = []
    resolve = second.model.resolve_schedules
    second.model.resolve_schedules = lambda steps: (resolve(steps),
                                                    seen.append(second.model.host_iter()))
    second.train()
    dsc = second.model
    assert seen == [1]  # half an epoch in 64-GPU steps
    assert (dsc.dense_start_iters, dsc.semantic_ramp) == (2, (2, 4))
    assert dsc.iter_count.item() == 2 and dsc.steps_per_epoch.item() == 2


def test_a_derived_config_cannot_drop_the_schedule_hook(tiny, monkeypatch):
    from mmengine.config import Config

    from dsc_mm.apis import train
    from dsc_mm.engine.hooks import ensure_schedule_hook
    built = []
    monkeypatch.setattr(train.Runner, 'from_cfg', built.append)
    cfg = Config(dict(model=tiny.dsc(), custom_hooks=[dict(type='EmptyCacheHook')]))
    train.build_runner(cfg)  # a derived config's own list, without the schedule hook
    assert built[0].custom_hooks == [dict(type='EmptyCacheHook'), dict(type='DSCScheduleHook')]
    # Present once already (under any scope prefix), or not a DSC model: left alone.
    cfg.custom_hooks = [dict(type='mmpretrain.DSCScheduleHook')]
    ensure_schedule_hook(cfg)
    assert cfg.custom_hooks == [dict(type='mmpretrain.DSCScheduleHook')]
    other = Config(dict(model=dict(type='DenseCL'), custom_hooks=[]))
    ensure_schedule_hook(other)
    assert other.custom_hooks == []
    bare = Config(dict(model=dict(type='mmpretrain.DSC')))
    ensure_schedule_hook(bare)
    assert bare.custom_hooks == [dict(type='DSCScheduleHook')]


def test_gradient_accumulation_is_refused_with_a_clear_message(tiny, tmp_path):
    from mmengine.optim import OptimWrapper
    cfg = _runner_cfg(tiny, tmp_path, max_iters=2, optim_wrapper=dict(
        optimizer=dict(type='SGD', lr=0.01), accumulative_counts=2))
    with pytest.raises(ValueError, match='accumulative_counts=2'):
        Runner(**cfg).train()  # DSCScheduleHook (the path DDP takes)
    model = MODELS.build(tiny.dsc())
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
    data = dict(inputs=[torch.randn(2, 3, 64, 64) for _ in range(2)],
                data_samples=[DataSample(), DataSample()])
    with pytest.raises(ValueError, match='does not support gradient accumulation'):
        model.train_step(data, wrapper)  # the model's own train_step (no DDP, no hook)
    assert model.iter_count.item() == 0
    model.train_step(data, OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    assert model.iter_count.item() == 1


def test_densecl_warm_up_is_in_epochs_and_survives_a_resume_at_another_world_size(monkeypatch):
    from types import SimpleNamespace

    from dsc_mm.engine.hooks import DenseCLEpochHook, dsc_schedule

    def runner(world, it):
        monkeypatch.setattr(dsc_schedule, 'get_world_size', lambda: world)
        return SimpleNamespace(model=SimpleNamespace(loss_lambda=0.5), iter=it,
                               train_dataloader=SimpleNamespace(dataset=range(IMAGENET),
                                                                batch_size=32))

    def lambdas(hook, run, iters):
        out = []
        for it in iters:
            run.iter = it
            hook.before_train_iter(run, 0)
            out.append(run.model.loss_lambda)
        return out

    hook = DenseCLEpochHook(start_epochs=2)
    run = runner(8, 0)
    hook.before_train(run)
    assert abs(hook.start_iters - 10000) < 20  # the author's 10000 iterations at 8 x 32
    assert lambdas(hook, run, [0, hook.start_iters - 1, hook.start_iters]) == [0., 0., 0.5]
    checkpoint = dict(meta=dict(iter=5004))  # saved after one epoch at 8 GPUs
    hook.before_save_checkpoint(run, checkpoint)

    resumed = DenseCLEpochHook(start_epochs=2)
    resumed.after_load_checkpoint(run, checkpoint)
    run = runner(64, 5004)
    resumed.before_train(run)
    # One epoch left, in 64-GPU iterations (625.5 per epoch).
    assert resumed.start_iters == 5004 + 626
    assert lambdas(resumed, run, [5004, 5004 + 625, 5004 + 626]) == [0., 0., 0.5]
    # A checkpoint without the meta (an older run) starts counting from iteration 0.
    fresh = DenseCLEpochHook(start_epochs=2)
    fresh.after_load_checkpoint(run, dict(meta=dict(iter=10)))
    fresh.before_train(runner(64, 10))
    assert fresh.start_iters == 1251


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
