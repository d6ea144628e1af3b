# Dense linear probe (frozen-feature evaluation of a pretrained backbone): the FCN protocol's
# plain-stem ResNet-18-D8, frozen in eval mode (FrozenEncoderDecoder: no gradient, BN running
# statistics of pretraining), and a linear 1x1-conv classifier on its C5 (output stride 8).
# The backbone is the one of fcn_r18-d8-plain_tiny.py, so `--pretrained` loads and checks it
# exactly as for the fine-tuning column; only the C5 map is returned (and cached).
_base_ = '../../../segmentation/_base_/models/fcn_r18-d8-plain_tiny.py'

model = dict(
    type='FrozenEncoderDecoder',
    cache_features=True,
    backbone=dict(out_indices=(3, )),
    decode_head=dict(
        _delete_=True,
        type='LinearProbeHead',
        in_channels=512,
        in_index=0,
        num_classes=19,  # set by each dataset's config
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None)

custom_imports = dict(imports=['dsc_mm', 'dsc_mm.probes'], allow_failed_imports=False)
