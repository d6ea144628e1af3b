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
        # Frozen until ~1 epoch (5004 iterations at batch 256) after the semantic term starts.
        freeze_prototypes_iters=15000))
