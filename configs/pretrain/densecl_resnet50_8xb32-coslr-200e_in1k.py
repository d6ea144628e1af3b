# mmpretrain's DenseCL recipe with its loss_lambda warm-up actually enabled: mmpretrain's config
# never adds DenseCLHook. The author used start_iters=10000 (WXinlong/DenseCL#16) for this very
# recipe (ImageNet, batch 256 = 5004 iterations per epoch), i.e. the first 2 of 200 epochs.
# Given in epochs, as DSC's dense_start_epochs, so both warm up for 2 epochs at any world size.
_base_ = 'mmpretrain::densecl/densecl_resnet50_8xb32-coslr-200e_in1k.py'
custom_imports = dict(imports=['dsc_mm'], allow_failed_imports=False)

custom_hooks = [dict(type='DenseCLEpochHook', start_epochs=2)]
