# DSC-KM on ResNet-50: DenseCL's model plus the neighbour pixel term and the k-means semantic term.
# Every knob and its default (CHOICE = not stated by the paper) is listed in docs/pretrain.md.
model = dict(
    type='DSC',
    queue_len=65536,
    feat_dim=128,
    momentum=0.001,  # mmpretrain's EMA convention: 0.001 here == MoCo's m = 0.999
    instance_weight=0.5,
    pixel_weight=0.5,
    semantic_weight=0.5,  # beta
    # The semantic term contrasts with at most the paper's global pool (256 images x 49).
    max_contrast_pixels=12544,
    backbone=dict(
        type='ResNet',
        depth=50,
        norm_cfg=dict(type='BN'),
        zero_init_residual=False),
    neck=dict(
        type='DenseCLNeck',
        in_channels=2048,
        hid_channels=2048,
        out_channels=128,
        num_grid=None),
    head=dict(
        type='ContrastiveHead',
        loss=dict(type='CrossEntropyLoss'),
        temperature=0.2),
    pixel_head=dict(
        type='PixelNeighbourHead',
        cross_view_topk=4,  # k_x
        same_view_topk=0,  # k_s; > 0 costs one more key-encoder forward per step
        temperature=0.2),
    semantic_head=dict(
        type='KMeansSemanticHead',
        num_classes=128,
        feat_dim=128,
        num_iters=10,
        temperature=0.2),
)
find_unused_parameters = True
# Counts DSC's optimizer steps and resolves schedules given in epochs at run start.
custom_hooks = [dict(type='DSCScheduleHook')]
