# FCN R50-D8 of the self-supervised transfer protocol (MoCo / DenseCL): mmseg's fcn_r50-d8
# with a PLAIN-stem ResNet-50. mmseg's base uses ResNetV1c (3-conv deep stem) initialised from
# open-mmlab://resnet50_v1c; a torchvision-style SSL checkpoint loaded into it would leave the
# deep stem random with only a warning.
_base_ = 'mmseg::_base_/models/fcn_r50-d8.py'

model = dict(
    # mmseg's EncoderDecoder pushes `pretrained` into the backbone: keep it None.
    pretrained=None,
    backbone=dict(
        type='ResNet',
        # Random init (the baseline). `tools/train.py CONFIG --pretrained PATH` sets
        # init_cfg=dict(type='Pretrained', checkpoint=PATH).
        init_cfg=None))

custom_imports = dict(imports=['dsc_mm'], allow_failed_imports=False)
