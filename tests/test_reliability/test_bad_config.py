"""Config and checkpoint mistakes: tools/train.py and the converter print one sentence naming the
file, the bad name and what to use instead, before any training output."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from dsc_mm.datasets.checks import check_coco_images
from rel_helpers import TINY_DSC, exit_message, load_tool, run_tool

DET_TINY = 'configs/detection/mask-rcnn_r18-fpn_tiny_coco-tiny.py'
DET_R50 = 'configs/detection/faster-rcnn_r50-c4-syncbn_ms-24k_voc0712.py'
DET_R18 = 'configs/detection/faster-rcnn_r18-c4_tiny_scenes-voc.py'


@pytest.fixture(scope='module')
def train_main():
    return load_tool('train').main


@pytest.fixture(scope='module')
def convert_main():
    return load_tool('convert_checkpoint').main


def test_unknown_method_name_is_one_sentence_with_the_nearest_name(tmp_path):
    work_dir = tmp_path / 'work'
    result = run_tool(['tools/train.py', TINY_DSC, '--work-dir', work_dir,
                       '--cfg-options', 'model.type=DSCC'])
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: Config {TINY_DSC}: model has type='DSCC', which is not registered in "
        "mmpretrain's model registry; did you mean 'DSC'?")
    assert not work_dir.exists()  # stopped before the Runner made anything


@pytest.mark.parametrize('option, path, key, suggestion', [
    ('model.queue_lenn=64', 'model', 'queue_lenn', "'queue_len'"),
    ('model.semantic_head.num_iter=3', 'model.semantic_head', 'num_iter', "'num_iters'"),
    ('model.pixel_head.cross_view_top_k=1', 'model.pixel_head', 'cross_view_top_k',
     "'cross_view_topk'"),
])
def test_misspelt_key_names_the_key_and_the_nearest_valid_one(train_main, tmp_path, option,
                                                              path, key, suggestion):
    message = exit_message(train_main, [TINY_DSC, '--work-dir', tmp_path / 'w',
                                        '--cfg-options', option])
    assert message.startswith(f'error: Config {TINY_DSC}: {path} '), message
    assert f"has no argument '{key}'; did you mean {suggestion}" in message
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('option, path, what, key, suggestion', [
    ('train_cfg.max_iter=4', 'train_cfg', "type='IterBasedTrainLoop'", 'max_iter', "'max_iters'"),
    ('optim_wrapper.optimizer.lrr=0.1', 'optim_wrapper.optimizer', "type='SGD'", 'lrr', "'lr'"),
    ('train_dataloader.batch_sizee=2', 'train_dataloader', 'torch DataLoader', 'batch_sizee',
     "'batch_size'"),
    # ImageFolderDataset takes **kwargs (forwarded to mmpretrain's CustomDataset/BaseDataset)
    ('train_dataloader.dataset.data_roott=x', 'train_dataloader.dataset',
     "type='ImageFolderDataset'", 'data_roott', "'data_root'"),
    ('param_scheduler.0.T_maxx=5', 'param_scheduler[0]', "type='CosineAnnealingLR'", 'T_maxx',
     "'T_max'"),
    ('default_hooks.logger.intervall=5', 'default_hooks.logger', "type='LoggerHook'",
     'intervall', "'interval'"),
    ('optim_wrapper.clip_gradd=None', 'optim_wrapper', "type='OptimWrapper'", 'clip_gradd',
     "'clip_grad'"),
    ('optim_wrapper.paramwise_cfg.bias_lr_mul=2', 'optim_wrapper.paramwise_cfg',
     'read by DefaultOptimWrapperConstructor', 'bias_lr_mul', "'bias_lr_mult'"),
])
def test_misspelt_key_outside_the_model_names_the_nearest_valid_one(
        train_main, tmp_path, option, path, what, key, suggestion):
    message = exit_message(train_main, [TINY_DSC, '--work-dir', tmp_path / 'w',
                                        '--cfg-options', option])
    assert message.startswith(f"error: Config {TINY_DSC}: {path} ({what}) has no argument "
                              f"'{key}'; did you mean {suggestion}"), message  # nearest first
    assert message.endswith('?') and '\n' not in message and message.count(suggestion) == 1
    assert not (tmp_path / 'w').exists()


def test_every_shipped_config_passes_the_pre_flight(repo_root):
    # The check must not refuse a valid key anywhere (no false alarm on a real config).
    from dsc_mm.apis.checks import check_config, load_config
    configs = sorted((repo_root / 'configs').glob('*/*.py'))
    assert len(configs) >= 20
    for config in configs:
        check_config(load_config(str(config)), str(config))


def test_config_syntax_error_is_one_sentence_with_the_line(train_main, tmp_path):
    base = tmp_path / 'base.py'
    base.write_text("model = dict(type='DSC'\nqueue_len = 3\n")  # unclosed parenthesis
    child = tmp_path / 'child.py'
    child.write_text("_base_ = './base.py'\n")
    broken = tmp_path / 'broken.py'
    broken.write_text("_base_ = '../x.py'\nmodel = dict(queue_len=)\n")
    assert exit_message(train_main, [broken]) == (
        f'error: Config {broken} has a Python syntax error on line 2 '
        f'(`model = dict(queue_len=)`): invalid syntax; fix that line.')
    message = exit_message(train_main, [child])  # the error is in the base file
    assert message.startswith(f'error: Config {base} has a Python syntax error on line 1 '), message
    assert message.endswith('; fix that line.') and '\n' not in message


def test_config_that_does_not_load_is_one_sentence(train_main, tmp_path):
    config = tmp_path / 'missing_base.py'
    config.write_text("_base_ = './nowhere.py'\n")
    message = exit_message(train_main, [config])
    assert message.startswith(f'error: Config {config} could not be loaded (') and \
        'nowhere.py' in message and '\n' not in message, message


def test_misspelt_dataset_type_in_a_downstream_config(train_main, tmp_path):
    message = exit_message(train_main, [DET_TINY, '--work-dir', tmp_path / 'w', '--cfg-options',
                                        'train_dataloader.dataset.type=CocoDatset'])
    assert message.startswith(f"error: Config {DET_TINY}: train_dataloader.dataset has "
                              "type='CocoDatset', which is not registered in mmdet's dataset "
                              "registry; did you mean 'CocoDataset'"), message


def test_coco_json_with_missing_images_fails_before_training(train_main, tmp_path):
    root = tmp_path / 'coco'
    (root / 'annotations').mkdir(parents=True)
    (root / 'train2017').mkdir()
    images = [dict(id=i, file_name=f'{i:012d}.jpg', height=32, width=32) for i in range(3)]
    for image in images[:2]:  # the third is missing
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / 'train2017' /
                                                               image['file_name'])
    ann = root / 'annotations' / 'instances_train2017.json'
    ann.write_text(json.dumps(dict(images=images, annotations=[], categories=[])))
    work_dir = tmp_path / 'work'
    message = exit_message(train_main, [
        DET_TINY, '--work-dir', work_dir, '--no-validate', '--cfg-options',
        f'train_dataloader.dataset.data_root={root}/'])
    assert message == (f'error: 1 of 3 images listed in {ann} are missing under '
                       f'{root}/train2017/: 000000000002.jpg; fix data_prefix.img in the config '
                       f'or restore the files.'), message
    assert not work_dir.exists()


def test_check_coco_images_reports_every_failure_mode(tmp_path, shared_data):
    coco = shared_data / 'coco_tiny'
    assert check_coco_images(str(coco / 'annotations' / 'instances_val2017.json'),
                             str(coco / 'val2017')) == 50
    with pytest.raises(ValueError, match='50 of 50 images listed in .* are missing under .*'
                                         'and 45 more; fix data_prefix.img'):
        check_coco_images(str(coco / 'annotations' / 'instances_val2017.json'), str(tmp_path))
    with pytest.raises(ValueError, match='does not exist'):
        check_coco_images(str(tmp_path / 'none.json'), str(tmp_path))
    (tmp_path / 'list.json').write_text('[1, 2]')
    with pytest.raises(ValueError, match='not a COCO json'):
        check_coco_images(str(tmp_path / 'list.json'), str(tmp_path))


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """A ResNet-18 pretraining-style checkpoint, a detector and a segmentor checkpoint."""
    from mmpretrain.models import ResNet
    root = tmp_path_factory.mktemp('ckpts')
    r18 = {f'backbone.{k}': v for k, v in ResNet(depth=18).state_dict().items()}
    torch.save({'state_dict': r18}, root / 'r18.pth')
    torch.save({'state_dict': {'rpn_head.rpn_conv.weight': torch.zeros(4, 4, 3, 3),
                               'roi_head.bbox_head.fc_cls.weight': torch.zeros(21, 8)}},
               root / 'detector.pth')
    # An mmseg FCN fine-tuned from it: the same backbone keys plus its heads, so only the
    # heads tell it from a pretraining checkpoint.
    torch.save({'state_dict': dict(r18, **{'decode_head.conv_seg.weight': torch.zeros(21, 8, 1, 1),
                                           'auxiliary_head.conv_seg.weight':
                                               torch.zeros(21, 8, 1, 1)})},
               root / 'segmentor.pth')
    return root


@pytest.mark.parametrize('name, heads', [('detector', 'roi_head., rpn_head.'),
                                         ('segmentor', 'auxiliary_head., decode_head.')])
def test_converter_refuses_a_downstream_checkpoint(convert_main, checkpoints, tmp_path, capsys,
                                                   name, heads):
    out = tmp_path / 'out.pth'
    for target in ('mmdet', 'mmseg'):
        assert convert_main([str(checkpoints / f'{name}.pth'), str(out), '--to', target]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"convert_checkpoint: error: {checkpoints / f'{name}.pth'} is a "
                              f'detector/segmentor checkpoint (it has {heads} keys), not a '
                              'pretrained backbone') and '\n' not in err, err
        assert not out.exists()


def test_converter_refuses_the_wrong_depth(convert_main, checkpoints, tmp_path, capsys):
    out = tmp_path / 'out.pth'
    assert convert_main([str(checkpoints / 'r18.pth'), str(out), '--to', 'mmdet',
                         '--depth', '50']) == 1
    assert 'holds a ResNet-18 backbone but the target is ResNet-50' in capsys.readouterr().err
    assert not out.exists()


def test_pretrained_of_the_wrong_kind_or_architecture_is_refused(train_main, checkpoints,
                                                                 tmp_path):
    message = exit_message(train_main, [DET_R50, '--work-dir', tmp_path / 'a',
                                        '--pretrained', checkpoints / 'r18.pth'])
    assert message.startswith(f"error: {checkpoints / 'r18.pth'} holds a ResNet-18 backbone "
                              'but the target is ResNet-50'), message
    message = exit_message(train_main, [DET_R18, '--work-dir', tmp_path / 'b',
                                        '--pretrained', checkpoints / 'detector.pth'])
    assert 'is a detector/segmentor checkpoint' in message
    assert not os.path.exists(tmp_path / 'a') and not os.path.exists(tmp_path / 'b')
