# ImageNet-1k linear evaluation, as MoCo v2 / DenseCL report it: mmpretrain's own recipe
# mmpretrain::mocov2/benchmarks/resnet50_8xb32-linear-steplr-100e_in1k.py unchanged: ResNet-50
# with frozen_stages=4 (every stage frozen and kept in eval mode, BN statistics included), a
# linear head on global-average-pooled C5, SGD lr 30 / momentum 0.9 / no weight decay, 100
# epochs at 8 x 32 images (docs/probes.md). Only where the weights come from differs:
# `tools/train.py --pretrained PATH` sets the backbone's init_cfg (the recipe's is an empty
# placeholder); data under data/imagenet (OpenMMLab layout, meta/train.txt, meta/val.txt).
_base_ = 'mmpretrain::mocov2/benchmarks/resnet50_8xb32-linear-steplr-100e_in1k.py'

model = dict(backbone=dict(init_cfg=None))
# The recipe's lr is for 8 x 32 = 256 images (stated as the fine-tuning protocols do).
auto_scale_lr = dict(enable=False, base_batch_size=256)
custom_imports = dict(imports=['dsc_mm'], allow_failed_imports=False)
