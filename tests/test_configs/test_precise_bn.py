"""Precise BN (detectron2's TEST.PRECISE_BN) on an mmdet model: before the evaluation, every BN
layer's running statistics are the average of its batch statistics over the precise-BN batches
of training data, and the saved checkpoint carries them."""
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch.nn.modules.batchnorm import _BatchNorm

from config_helpers import DET_DIR, load, rebase_data
from dsc_mm.engine.hooks import PreciseBNBeforeEvalHook
from dsc_mm.utils import load_checkpoint_file

NUM_ITERS = 2


class BatchStatsRecorder(Hook):
    """Records each BN layer's training-mode batch statistics, and the running statistics the
    evaluation starts from."""

    def __init__(self, bns):
        self.bns, self.batches, self.at_val = bns, {name: [] for name in bns}, None
        for name, bn in bns.items():
            bn.register_forward_pre_hook(self._record(name))

    def _record(self, name):
        def record(module, inputs):
            if module.training:
                x = inputs[0].detach().transpose(0, 1).flatten(1)  # (C, N*H*W)
                self.batches[name].append((x.mean(1), x.var(1, unbiased=True)))
        return record

    def before_val_epoch(self, runner):
        self.at_val = {name: (bn.running_mean.clone(), bn.running_var.clone())
                       for name, bn in self.bns.items()}


def test_running_stats_are_the_data_stats_before_evaluation(scenes_root, tmp_path):
    cfg = rebase_data(load(DET_DIR / 'faster-rcnn_r18-c4_tiny_scenes-voc.py'), 'data/scenes',
                      scenes_root)
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.val_dataloader.dataset.indices = 1
    cfg.custom_hooks = [dict(type='PreciseBNBeforeEvalHook', num_iters=NUM_ITERS)]
    # Smaller inputs and fewer RoIs: the statistics are checked, not the detector's quality.
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.pipeline = [
            dict(type='Resize', scale=(160, 128), keep_ratio=True)
            if t.type in ('Resize', 'RandomChoiceResize') else t for t in loader.dataset.pipeline]
    cfg.model.train_cfg.rpn_proposal.max_per_img = 50
    cfg.model.train_cfg.rcnn.sampler.num = 16
    cfg.model.test_cfg.rpn.max_per_img = 20
    runner = Runner.from_cfg(cfg)
    assert any(isinstance(h, PreciseBNBeforeEvalHook) for h in runner.hooks)
    model = runner.model
    # The stem, a backbone block, the C4 res5 head (run on the sampled RoIs) and its extra norm.
    bns = {name: m for name, m in model.named_modules() if isinstance(m, _BatchNorm) and name in (
        'backbone.bn1', 'backbone.layer3.1.bn2', 'roi_head.shared_head.layer4.0.bn1',
        'roi_head.shared_head.norm')}
    assert len(bns) == 4
    recorder = BatchStatsRecorder(bns)
    runner.register_hook(recorder)
    runner.train()

    checkpoint = load_checkpoint_file(str(tmp_path / 'iter_1.pth'))['state_dict']
    for name, bn in bns.items():
        # One training forward, then the NUM_ITERS precise-BN forwards of training batches.
        batches = recorder.batches[name]
        assert len(batches) == 1 + NUM_ITERS, name
        precise = batches[1:]
        expected_mean = torch.stack([mean for mean, _ in precise]).mean(0)
        expected_var = torch.stack([var for _, var in precise]).mean(0)
        mean, var = recorder.at_val[name]
        torch.testing.assert_close(mean, expected_mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(var, expected_var, rtol=1e-4, atol=1e-5)
        # Not where one momentum-0.1 step from the initial (0, 1) had left them.
        first_mean, first_var = batches[0]
        assert not torch.allclose(mean, 0.1 * first_mean, atol=1e-4), name
        assert bn.momentum == 0.1  # restored after the recomputation
        torch.testing.assert_close(checkpoint[f'{name}.running_mean'], mean)
        torch.testing.assert_close(checkpoint[f'{name}.running_var'], var)
