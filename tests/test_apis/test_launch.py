"""The launch guard covers ImageNet linear evaluation (a protocol of mmpretrain's scope)."""
import pytest
from mmengine.config import Config

from dsc_mm.apis.launch import check_total_batch, is_protocol

LINEAR = 'configs/classification/resnet50_8xb32-linear-steplr-100e_in1k.py'
PRETRAIN = 'configs/pretrain/dsc-km_resnet50_8xb32-coslr-200e_in1k.py'


def test_linear_evaluation_is_guarded_at_its_8_x_32_launch(repo_root):
    cfg = Config.fromfile(str(repo_root / LINEAR))
    assert is_protocol(cfg) and cfg.train_dataloader.batch_size == 32
    assert check_total_batch(cfg, 8, LINEAR) == 30.  # the recipe's lr at 256 images
    with pytest.raises(ValueError, match=r'1 process\(es\) x 32 images = 32; launch 8 '
                       r'processes \(tools/dist_train.sh .* 8\)'):
        check_total_batch(cfg, 1, LINEAR)  # 1 GPU at lr 30: refused
    cfg.auto_scale_lr.enable = True
    assert check_total_batch(cfg, 1, LINEAR) == pytest.approx(30. / 8)


def test_pretraining_configs_of_the_same_scope_are_not_protocols(repo_root):
    cfg = Config.fromfile(str(repo_root / PRETRAIN))
    assert cfg.default_scope == 'mmpretrain' and cfg.auto_scale_lr.base_batch_size == 256
    assert not is_protocol(cfg) and check_total_batch(cfg, 1, PRETRAIN) is None
