"""Tiny model configs shared by the model tests (narrow ResNet-18, small embeddings, queues)."""
import copy
from types import SimpleNamespace

import pytest
from mmengine.registry import init_default_scope

import dsc_mm.models  # noqa: F401  (registers DSC and its heads)

FEAT_DIM = 16
QUEUE_LEN = 64
# ResNet-18 at a quarter of the width (C5 has 128 channels): the structure of the real thing
# at 1/16 of the FLOPs, so a two-model, two-step test takes seconds on 2 cores.
C5_CHANNELS = 128
BACKBONE = dict(type='ResNet', depth=18, stem_channels=16, base_channels=16,
                norm_cfg=dict(type='BN'), zero_init_residual=False)
HEAD = dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'), temperature=0.2)
DENSECL_NECK = dict(type='DenseCLNeck', in_channels=C5_CHANNELS, hid_channels=32,
                    out_channels=FEAT_DIM)


def tiny_dsc_cfg(**overrides) -> dict:
    """A CPU-fast DSC-KM config; ``overrides`` replace top-level keys."""
    cfg = dict(
        type='DSC',
        queue_len=QUEUE_LEN,
        feat_dim=FEAT_DIM,
        momentum=0.001,
        backbone=BACKBONE,
        neck=DENSECL_NECK,
        head=HEAD,
        pixel_head=dict(type='PixelNeighbourHead', cross_view_topk=1, same_view_topk=0),
        semantic_head=dict(type='KMeansSemanticHead', num_classes=4, feat_dim=FEAT_DIM,
                           num_iters=3))
    cfg.update(overrides)
    return copy.deepcopy(cfg)


@pytest.fixture(autouse=True, scope='session')
def _mmpretrain_scope():
    init_default_scope('mmpretrain')


@pytest.fixture(scope='session')
def tiny():
    """Tiny configs: ``tiny.dsc(**overrides)`` and the parts (backbone, neck, head, sizes)."""
    return SimpleNamespace(dsc=tiny_dsc_cfg, backbone=BACKBONE, neck=DENSECL_NECK, head=HEAD,
                           feat_dim=FEAT_DIM, queue_len=QUEUE_LEN, c5_channels=C5_CHANNELS)
