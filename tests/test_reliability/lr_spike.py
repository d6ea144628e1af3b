"""Test-only hook: the learning rate jumps to ``lr`` at iteration ``at`` (1-based), as a bad
warm-up or a mistyped schedule would make it (imported through ``custom_imports`` of
``configs/dsc-km_resnet18_tiny_spike.py``, with this folder on PYTHONPATH)."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class LrSpikeHook(Hook):
    """Set every parameter group's learning rate to ``lr`` before iteration ``at``."""

    def __init__(self, at: int, lr: float = 1e30):
        self.at, self.lr = at, lr

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            for group in runner.optim_wrapper.optimizer.param_groups:
                group['lr'] = self.lr
