"""tools/train.py: the OpenMMLab-style entry point, including a 2-process gloo run via torchrun."""
import os
import socket
import subprocess
import sys

import pytest

from dsc_mm.utils import load_checkpoint_file

CONFIG = 'tests/data/configs/densecl_r18_tiny_folder.py'


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(args, cwd, timeout=600):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_process_gloo_run_through_torchrun(repo_root, tiny_image_folder, tmp_path):
    work_dir = tmp_path / 'dist'
    result = _run([
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
        '--master_port', str(_free_port()), 'tools/train.py', CONFIG, '--launcher', 'pytorch',
        '--work-dir', str(work_dir), '--cfg-options',
        f'train_dataloader.dataset.data_root={tiny_image_folder}', 'train_cfg.max_iters=2',
        'default_hooks.checkpoint.interval=2'], cwd=repo_root)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = load_checkpoint_file(str(work_dir / 'iter_2.pth'))
    # Two processes x batch 4: the queue pointer advanced by the global batch twice.
    assert int(ckpt['state_dict']['queue_ptr']) == 2 * 2 * 4
    assert 'Distributed launcher: pytorch' in result.stdout + result.stderr or \
        'world_size: 2' in (result.stdout + result.stderr)


def test_missing_config_is_one_clear_error(repo_root, tmp_path):
    result = _run([sys.executable, 'tools/train.py', str(tmp_path / 'nope.py')], cwd=repo_root)
    assert result.returncode != 0
    assert 'does not exist' in result.stderr and 'nope.py' in result.stderr


def test_config_without_known_scope_is_refused(repo_root, tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text("default_scope = 'mmocr'\nmodel = dict(type='X')\n")
    result = _run([sys.executable, 'tools/train.py', str(bad)], cwd=repo_root)
    assert result.returncode != 0 and "default_scope='mmocr'" in result.stderr


@pytest.mark.parametrize('script', ['tools/dist_train.sh', 'tools/slurm_train.sh'])
def test_launch_scripts_demand_their_arguments(repo_root, script):
    result = _run(['bash', script], cwd=repo_root)
    assert result.returncode == 2 and 'usage:' in result.stderr
