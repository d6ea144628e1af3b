"""Test-only hook: each process saves the loss terms of its first iteration (imported through the
``custom_imports`` of ``configs/dsc-km_resnet18_tiny_dist.py``, with this folder on PYTHONPATH)."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class FirstLossRecorderHook(Hook):
    """Write ``{work_dir}/first_losses_rank{rank}.pth``: this process's first-step outputs."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == 0:
            torch.save({k: torch.as_tensor(v).detach().clone() for k, v in outputs.items()},
                       osp.join(runner.work_dir, f'first_losses_rank{get_rank()}.pth'))
