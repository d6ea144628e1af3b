# DSC-PM on ResNet-18 on CPU: the DSC-KM tiny settings with prototype mapping.
_base_ = './dsc-km_resnet18_tiny_scenes.py'

model = dict(
    semantic_head=dict(
        _delete_=True,
        type='PrototypeSemanticHead',
        num_classes=8,
        feat_dim=128,
        temperature=0.1,
        sinkhorn_eps=0.05,
        sinkhorn_iters=3,
        freeze_prototypes_iters=60))
