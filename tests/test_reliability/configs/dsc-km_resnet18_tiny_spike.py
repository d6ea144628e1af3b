# The reliability DSC-KM run whose learning rate jumps to 1e30 at iteration 3: the loss of
# iteration 3 is still finite (computed before the step), the step sends the weights to ~1e29.
# Checkpoints at every iteration. Set train_dataloader.dataset.data_root with --cfg-options.
_base_ = './dsc-km_resnet18_tiny_reliability.py'

custom_imports = dict(imports=['dsc_mm', 'lr_spike'], allow_failed_imports=False)
custom_hooks = [dict(type='LrSpikeHook', at=3, lr=1e30)]
train_cfg = dict(max_iters=4)
default_hooks = dict(checkpoint=dict(interval=1))
