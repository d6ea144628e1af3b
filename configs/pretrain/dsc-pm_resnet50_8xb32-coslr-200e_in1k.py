# DSC-PM: DSC-KM's recipe with prototype mapping (Sinkhorn-Knopp, swapped prediction).
_base_ = './dsc-km_resnet50_8xb32-coslr-200e_in1k.py'

model = dict(
    semantic_head=dict(
        _delete_=True,
        type='PrototypeSemanticHead',
        num_classes=128,
        feat_dim=128,
        temperature=0.1,
        sinkhorn_eps=0.05,
        sinkhorn_iters=3,
        # Frozen until 1 epoch after the semantic term starts (SwAV's habit).
        freeze_prototypes_epochs=3))
