# mmpretrain's MoCo v2 recipe (the baseline DSC must beat), unchanged.
_base_ = 'mmpretrain::mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py'
custom_imports = dict(imports=['dsc_mm'], allow_failed_imports=False)
