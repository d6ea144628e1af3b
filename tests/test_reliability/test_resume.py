"""A tiny DSC-KM pretraining killed with SIGKILL and resumed ends exactly like an unbroken run."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from dsc_mm.utils import load_checkpoint_file
from rel_helpers import (REPO_ROOT, TINY_DSC, TINY_DSC_ITERS, exit_message, load_tool,
                         tool_env)

# test_non_finite.py reads the same session run (tiny_dsc_run): one xdist worker builds it once.
pytestmark = pytest.mark.xdist_group('tiny_dsc_run')

MAX_ITERS = TINY_DSC_ITERS  # the shared uninterrupted run's; a checkpoint every 2 iterations


def _train_args(work_dir, scenes, *extra):
    return [sys.executable, 'tools/train.py', TINY_DSC, '--work-dir', str(work_dir), *extra,
            '--cfg-options', f'train_dataloader.dataset.data_root={scenes}',
            f'train_cfg.max_iters={MAX_ITERS}']


def _kill_after_first_checkpoint(work_dir, scenes):
    """Start a run; SIGKILL it once ``last_checkpoint`` names a complete checkpoint."""
    proc = subprocess.Popen(_train_args(work_dir, scenes), cwd=REPO_ROOT, env=tool_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = work_dir / 'last_checkpoint'
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:
        if last.is_file() and last.read_text().strip():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    return proc.returncode, last.read_text().strip()


def _tensors(tree, prefix=''):
    """Flatten nested dicts/lists of a checkpoint section into ``{path: value}``."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return {prefix.rstrip('.'): tree}
    return {k: v for key, sub in items for k, v in _tensors(sub, f'{prefix}{key}.').items()}


def _assert_identical(section_a, section_b, what):
    flat_a, flat_b = _tensors(section_a), _tensors(section_b)
    assert flat_a.keys() == flat_b.keys(), what
    for key, value in flat_a.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, flat_b[key]), f'{what}: {key}'
        else:
            assert value == flat_b[key], f'{what}: {key}'


def test_killed_and_resumed_run_is_identical_to_an_uninterrupted_one(tiny_dsc_run, scenes,
                                                                     tmp_path):
    killed_dir = tmp_path / 'killed'
    # The uninterrupted run (the shared tiny_dsc_run) goes alongside the one to be killed.
    returncode, last = _kill_after_first_checkpoint(killed_dir, scenes)
    full_dir = tiny_dsc_run.finished()
    assert returncode == -signal.SIGKILL, 'the run finished before it could be killed'
    assert not (killed_dir / f'iter_{MAX_ITERS}.pth').exists()
    killed_at = load_checkpoint_file(last)['meta']['iter']
    assert 0 < killed_at < MAX_ITERS

    resumed = subprocess.run(_train_args(killed_dir, scenes, '--resume'), cwd=REPO_ROOT,
                             env=tool_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'resumed epoch: 0, iter: {killed_at}' in resumed.stdout + resumed.stderr

    a = load_checkpoint_file(str(full_dir / f'iter_{MAX_ITERS}.pth'))
    b = load_checkpoint_file(str(killed_dir / f'iter_{MAX_ITERS}.pth'))
    state = a['state_dict']
    # Every piece of DSC's state is there: weights, both queues, EMA key encoder, k-means
    # centroids, the iteration counter of the schedules.
    for key in ('instance_queue.queue', 'pixel_queue.queue', 'instance_queue.ptr',
                'encoder_k.module.0.conv1.weight', 'encoder_k.steps',
                'semantic_head.centroids', 'iter_count', 'backbone.conv1.weight'):
        assert key in state, key
    assert int(state['iter_count']) == MAX_ITERS and a['meta']['iter'] == MAX_ITERS
    _assert_identical(a['state_dict'], b['state_dict'], 'state_dict')
    _assert_identical(a['optimizer'], b['optimizer'], 'optimizer')
    _assert_identical(a['param_schedulers'], b['param_schedulers'], 'param_schedulers')
    assert b['meta']['iter'] == MAX_ITERS
    _assert_identical(a['meta']['rng_states'], b['meta']['rng_states'], 'rng_states')


def test_truncated_latest_checkpoint_is_one_clear_error(repo_root, scenes, tmp_path):
    # What a pre-atomic crash leaves: last_checkpoint naming a truncated file.
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'iter_2.pth').write_bytes(b'PK\x03\x04 truncated')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_2.pth'))
    message = exit_message(load_tool('train').main, [
        TINY_DSC, '--work-dir', work_dir, '--resume', '--cfg-options',
        f'train_dataloader.dataset.data_root={scenes}'])
    assert message.startswith(f'error: {work_dir / "iter_2.pth"} is not a readable torch '
                              'checkpoint'), message
    assert sorted(os.listdir(work_dir)) == ['iter_2.pth', 'last_checkpoint']
