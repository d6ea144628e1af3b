# DSC-KM on ResNet-18, 96 px (3x3 C5 grid), on CPU; the method's knobs scaled to 300 iterations.
_base_ = ['./_base_/models/dsc-km_resnet50.py', './_base_/tiny_cpu.py']

model = dict(
    # 64 keys = 8 iterations: with only 269 (real) or 400 (scenes) images, a longer queue holds
    # each query's own key from the previous epoch as a negative (queue 256 kept the instance
    # loss flat at ~5.3 over 300 iterations; docs/pretrain.md).
    queue_len=64,
    dense_start_iters=30,
    semantic_ramp=(30, 90),
    backbone=dict(depth=18),
    neck=dict(in_channels=512, hid_channels=512),
    pixel_head=dict(cross_view_topk=2),  # 2 of 9 locations (4 of 49 at paper scale)
    semantic_head=dict(num_classes=8))  # pool of 8 images x 9 = 72 pixels per step
