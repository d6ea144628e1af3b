"""The ImageNet linear evaluation is mmpretrain's MoCo v2 recipe, and its CPU variant trains
its linear head on the scenes' image-level labels with the backbone left untouched."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

CLS = Path(__file__).resolve().parents[2] / 'configs' / 'classification'


def test_in1k_linear_eval_is_mmpretrains_recipe():
    cfg = Config.fromfile(str(CLS / 'resnet50_8xb32-linear-steplr-100e_in1k.py'))
    assert cfg.model.backbone.depth == 50 and cfg.model.backbone.frozen_stages == 4
    assert cfg.model.backbone.init_cfg is None  # tools/train.py --pretrained sets it
    assert cfg.model.neck.type == 'GlobalAveragePooling'
    assert cfg.optim_wrapper.optimizer.lr == 30. and cfg.optim_wrapper.optimizer.weight_decay == 0
    assert cfg.param_scheduler[0].milestones == [60, 80]
    assert cfg.train_cfg.max_epochs == 100 and cfg.train_dataloader.batch_size == 32


def test_tiny_linear_eval_trains_only_the_head(scenes_64, tmp_path):
    import dsc_mm  # noqa: F401
    from mmengine.runner import Runner
    scenes = scenes_64
    cfg = Config.fromfile(str(CLS / 'resnet18_linear_tiny_scenes.py'))
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = str(scenes / 'coco')
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.max_epochs = cfg.train_cfg.val_interval = 1
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.model.init_weights()  # now, so that runner.train() does not re-initialise
    backbone = runner.model.backbone
    for name, buf in backbone.named_buffers():
        if 'running_mean' in name:
            buf.uniform_(-0.5, 0.5)  # a BN that updated its statistics would change these
    before = copy.deepcopy(backbone.state_dict())
    head_before = runner.model.head.fc.weight.detach().clone()
    runner.train()
    for key, value in before.items():
        assert torch.equal(backbone.state_dict()[key], value), key
    assert not torch.equal(runner.model.head.fc.weight, head_before)
    # The logged top-1 is the share of validation images whose highest logit is their label,
    # recomputed here from the trained model's logits (not through mmpretrain's Accuracy).
    hits = []
    runner.model.eval()
    with torch.no_grad():
        for batch in runner.val_dataloader:
            data = runner.model.data_preprocessor(batch, False)
            logits = runner.model(data['inputs'], mode='tensor')  # (B, num_classes)
            labels = torch.cat([sample.gt_label for sample in data['data_samples']])
            hits += (logits.argmax(1) == labels).tolist()
    assert len(hits) == len(runner.val_dataloader.dataset) == 2
    expected = 100 * sum(hits) / len(hits)
    assert runner.message_hub.get_scalar('val/accuracy/top1').current() == \
        pytest.approx(expected, abs=1e-4)
