"""tools/train.py: the OpenMMLab-style entry point (its 2-process gloo run through torchrun is
tests/test_reliability/test_distributed.py)."""
import os
import subprocess

import pytest

CONFIG = 'tests/data/configs/densecl_r18_tiny_folder.py'


def _run(args, cwd, timeout=600):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_missing_config_is_one_clear_error(load_script, tmp_path):
    missing = tmp_path / 'nope.py'
    assert _train_main(load_script, [str(missing)]) == (
        f'Config {missing} does not exist; pass a file under configs/.')


def test_config_without_known_scope_is_refused(load_script, tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text("default_scope = 'mmocr'\nmodel = dict(type='X')\n")
    assert _train_main(load_script, [str(bad)]) == (
        f"error: Config {bad} has default_scope='mmocr'; dsc_mm trains configs whose "
        "default_scope is one of ['mmdet', 'mmpretrain', 'mmseg']: set it in the config (or "
        "inherit an OpenMMLab base).")


@pytest.mark.parametrize('script', ['tools/dist_train.sh', 'tools/slurm_train.sh'])
def test_launch_scripts_demand_their_arguments(repo_root, script):
    result = _run(['bash', script], cwd=repo_root)
    assert result.returncode == 2 and 'usage:' in result.stderr


VOC_DET = 'configs/detection/faster-rcnn_r50-c4-syncbn_ms-24k_voc0712.py'
VOC_SEG = 'configs/segmentation/fcn_r50-d8-plain-syncbn_20k_voc12aug-512x512.py'


@pytest.mark.parametrize('config, per_process, protocol_processes', [
    (VOC_DET, 2, 8),  # detectron2: 8 GPUs x 2 = 16
    (VOC_SEG, 4, 4),  # mmseg: 4 GPUs x 4 = 16
])
def test_launch_guard_at_simulated_world_sizes(repo_root, config, per_process,
                                               protocol_processes):
    from mmengine.config import Config

    from dsc_mm.apis.launch import check_total_batch
    cfg = Config.fromfile(str(repo_root / config))
    lr = cfg.optim_wrapper.optimizer.lr
    assert cfg.train_dataloader.batch_size == per_process
    # The protocol's own launch passes, at the protocol's lr.
    assert check_total_batch(cfg, protocol_processes, config) == lr
    for world_size in (1, 2, 2 * protocol_processes):
        with pytest.raises(ValueError) as error:
            check_total_batch(cfg, world_size, config)
        message = str(error.value)
        assert f'{world_size} process(es) x {per_process} images = ' \
               f'{world_size * per_process}' in message
        assert f'tools/dist_train.sh {config} {protocol_processes}' in message
        assert 'auto_scale_lr.enable=True' in message and message.count('. ') == 0
        # With auto_scale_lr on, the run goes ahead at the linearly scaled lr.
        cfg.auto_scale_lr.enable = True
        assert check_total_batch(cfg, world_size, config) == pytest.approx(
            lr * world_size / protocol_processes)
        cfg.auto_scale_lr.enable = False


def test_guard_leaves_configs_without_a_protocol_batch_alone(repo_root):
    from mmengine.config import Config

    from dsc_mm.apis.launch import check_total_batch
    tiny = Config.fromfile(str(repo_root / 'configs/detection/faster-rcnn_r18-c4_tiny_scenes-voc.py'))
    assert 'auto_scale_lr' not in tiny and check_total_batch(tiny, 3) is None
    # Pretraining configs state their recipe's batch (8xb32 = 256) but are not protocols.
    pretrain = Config.fromfile(str(repo_root / CONFIG))
    pretrain.auto_scale_lr = dict(enable=False, base_batch_size=256)
    assert check_total_batch(pretrain, 1) is None


def _train_main(load_script, argv):
    """``tools/train.py`` run in this process (a subprocess would import the stack again)."""
    train_tool = load_script('tools/train.py')
    with pytest.raises(SystemExit) as stop:
        train_tool.main(argv)
    return str(stop.value.code)


# A small config standing for a protocol of total batch 16 (the guard's logic is tested on the
# protocol configs above; here the wiring of tools/train.py, at one process x 2 images).
TINY_AS_PROTOCOL = ['configs/segmentation/fcn_r18-d8-plain_tiny_camvid.py', '--cfg-options',
                    'auto_scale_lr.base_batch_size=16', 'train_dataloader.dataset.ann_file=',
                    'train_dataloader.dataset.data_root=/nonexistent']


def test_train_refuses_a_wrong_total_batch_in_one_sentence(repo_root, load_script, tmp_path,
                                                           monkeypatch):
    monkeypatch.chdir(repo_root)
    error = _train_main(load_script, [*TINY_AS_PROTOCOL, '--work-dir', str(tmp_path)])
    # sys.exit(message): the message alone on stderr, no traceback.
    assert error.startswith(f'error: Config {TINY_AS_PROTOCOL[0]} is a protocol for a total '
                            f'batch of 16 (auto_scale_lr.base_batch_size) at lr 0.01')
    assert '1 process(es) x 2 images = 2' in error and '\n' not in error


def test_train_prints_the_scaled_lr(repo_root, load_script, tmp_path, monkeypatch):
    monkeypatch.chdir(repo_root)
    # Its own experiment name: mmengine keeps one logger per name (config file + second), so a
    # Runner of the same config built in the same second by the test above would own the log.
    error = _train_main(load_script, [*TINY_AS_PROTOCOL, 'auto_scale_lr.enable=True',
                                      'experiment_name=test_train_prints_the_scaled_lr',
                                      '--work-dir', str(tmp_path)])
    # The run went past the guard and stopped at the (missing) data, in one sentence.
    assert error.startswith('error: ') and '/nonexistent' in error and 'total batch' not in error
    log = next(tmp_path.glob('*/*.log')).read_text()
    # One process x 2 images: lr 0.01 x 2 / 16.
    assert 'Total batch 1 process(es) x 2 images: lr 0.00125.' in log
