"""The stack workarounds of dsc_mm.compat: each test fails if its workaround is removed."""
import os
import pickle
import subprocess
import sys
import uuid

import pytest
import torch
from mmengine.config import Config

from dsc_mm.apis import build_runner
from dsc_mm.compat import cpu_ddp_cfg, revert_syncbn_cfg
from dsc_mm.utils import CheckpointError, load_checkpoint_file

CONFIG = 'tests/data/configs/densecl_r18_tiny_folder.py'


def _runner(repo_root, work_dir, data_root, max_iters, resume=False):
    cfg = Config.fromfile(str(repo_root / CONFIG))
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.dataset.data_root = str(data_root)
    cfg.train_cfg.max_iters = max_iters
    cfg.resume = resume
    cfg.experiment_name = f'compat-{uuid.uuid4().hex[:8]}'  # Runner singletons are per name
    return build_runner(cfg)


@pytest.fixture(scope='module')
def trained_work_dir(repo_root, tiny_image_folder, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('densecl_tiny')
    _runner(repo_root, work_dir, tiny_image_folder, max_iters=4).train()
    return work_dir


class _RunsCode:
    """Unpickling this creates a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_mmengine_checkpoint_needs_the_allowlist(trained_work_dir):
    # Without dsc_mm, torch 2.14's safe default refuses mmengine's own checkpoint
    # (open-mmlab/mmengine#1655): this is the breakage the allowlist repairs.
    ckpt = trained_work_dir / 'iter_4.pth'
    probe = f"import torch; torch.load({str(ckpt)!r}, map_location='cpu')"
    result = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True)
    assert result.returncode != 0 and 'Weights only load failed' in result.stderr
    # With the allowlist it loads with weights_only=True and keeps the message hub.
    ckpt_dict = load_checkpoint_file(str(ckpt))
    assert ckpt_dict['meta']['iter'] == 4
    assert 'log_scalars' in ckpt_dict['message_hub']
    assert 'queue' in ckpt_dict['state_dict']


def test_runner_resume_round_trip(repo_root, tiny_image_folder, trained_work_dir):
    saved = load_checkpoint_file(str(trained_work_dir / 'iter_4.pth'))['state_dict']
    runner = _runner(repo_root, trained_work_dir, tiny_image_folder, max_iters=6, resume=True)
    runner.load_or_resume()  # what runner.train() does first
    assert runner.iter == 4
    restored = runner.model.state_dict()
    for key in ('queue', 'queue_ptr', 'queue2', 'encoder_k.module.0.conv1.weight',
                'backbone.layer4.1.bn2.running_mean'):
        assert torch.equal(restored[key], saved[key]), key
    runner.train()
    assert runner.iter == 6 and (trained_work_dir / 'iter_6.pth').is_file()


def test_code_executing_pickle_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'x': _RunsCode(str(marker))}, evil)
    with pytest.raises(CheckpointError, match='refused'):
        load_checkpoint_file(str(evil))
    # mmengine's own loader (load_from, resume, Pretrained init) is protected too.
    from mmengine.runner import CheckpointLoader
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(str(evil), map_location='cpu')
    assert not marker.exists()


def test_not_a_checkpoint_is_one_clear_error(tmp_path):
    junk = tmp_path / 'notes.pth'
    junk.write_text('not a checkpoint')
    with pytest.raises(CheckpointError, match='not a readable torch checkpoint'):
        load_checkpoint_file(str(junk))
    with pytest.raises(CheckpointError, match='does not exist'):
        load_checkpoint_file(str(tmp_path / 'missing.pth'))


def test_cpu_ddp_cfg_reverts_syncbn_and_device_ids():
    cfg = Config(dict(model=dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
                                 head=[dict(norm_cfg=dict(type='MMSyncBN'))]),
                      sync_bn='torch', find_unused_parameters=True))
    cpu_ddp_cfg(cfg)
    assert cfg.model.backbone.norm_cfg.type == 'BN'
    assert cfg.model.head[0].norm_cfg.type == 'BN'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model_wrapper_cfg.find_unused_parameters is True
    assert 'sync_bn' not in cfg
    assert revert_syncbn_cfg({'type': 'GN'}) == {'type': 'GN'}


def test_cross_package_collate_scope_is_dropped(repo_root):
    from dsc_mm.compat import drop_collate_scope
    cfg = Config.fromfile(str(repo_root / CONFIG))
    # The mmpretrain:: base leaves `_scope_` here; mmengine would pass it to default_collate.
    assert cfg.train_dataloader.collate_fn.get('_scope_') == 'mmpretrain'
    drop_collate_scope(cfg)
    assert dict(cfg.train_dataloader.collate_fn) == {'type': 'default_collate'}


def test_getattr_stand_in_allows_only_history_buffer_statistics(tmp_path):
    # A pickle that reaches getattr(<allowed class>, '__init__') is refused, while
    # mmengine's getattr(HistoryBuffer, 'mean') (every checkpoint has it) loads.
    from mmengine.logging import HistoryBuffer

    class _Probe:
        def __init__(self, name):
            self.name = name

        def __reduce__(self):
            return (getattr, (HistoryBuffer, self.name))

    torch.save({'ok': _Probe('mean')}, tmp_path / 'ok.pth')
    assert load_checkpoint_file(str(tmp_path / 'ok.pth'))['ok'] is HistoryBuffer.mean
    torch.save({'bad': _Probe('__init__')}, tmp_path / 'bad.pth')
    with pytest.raises(CheckpointError, match='refused'):
        load_checkpoint_file(str(tmp_path / 'bad.pth'))


# A process that dies while writing: RLIMIT_FSIZE makes the kernel kill it (SIGXFSZ) as soon
# as it writes past LIMIT bytes, i.e. deterministically in the middle of the write.
_KILLED_MID_WRITE = '''
import resource, signal, sys
import torch
import dsc_mm  # applies the workaround
from mmengine.runner.checkpoint import save_checkpoint
limit = int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; the kernel then kills
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
if sys.argv[3] == 'checkpoint':
    save_checkpoint({'w': torch.ones(1 << 20)}, sys.argv[1])  # 4 MiB, killed after LIMIT
else:
    from collections import deque
    from types import SimpleNamespace
    from mmengine.fileio import get_file_backend
    from mmengine.hooks import CheckpointHook
    from mmengine.logging import MessageHub
    hook = CheckpointHook(interval=1, by_epoch=False)
    hook.out_dir, hook.file_backend = sys.argv[1], get_file_backend(sys.argv[1])
    hook.keep_ckpt_ids = deque()
    runner = SimpleNamespace(work_dir=sys.argv[1], message_hub=MessageHub.get_instance('t'),
                             save_checkpoint=lambda *args, **kwargs: None)
    hook._save_checkpoint_with_step(runner, 200, {})  # writes last_checkpoint
'''


def _kill_mid_write(path, limit, what):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')
    return subprocess.run([sys.executable, '-c', _KILLED_MID_WRITE, str(path), str(limit), what],
                          capture_output=True, text=True, env=env)


def test_checkpoint_killed_mid_write_keeps_the_previous_file(tmp_path):
    # mmengine 0.10.7's LocalBackend.put truncates iter_N.pth first; the kill then leaves a
    # partial file. Through atomic_file the previous complete checkpoint survives.
    from mmengine.runner.checkpoint import save_checkpoint
    ckpt = tmp_path / 'iter_100.pth'
    save_checkpoint({'w': torch.arange(5.)}, str(ckpt))
    result = _kill_mid_write(ckpt, 1 << 16, 'checkpoint')
    assert result.returncode == -25, result.stderr[-2000:]  # SIGXFSZ: died mid-write
    assert torch.equal(load_checkpoint_file(str(ckpt))['w'], torch.arange(5.))
    # A new write then replaces it completely (and leaves no temporary file of its own).
    save_checkpoint({'w': torch.ones(1 << 18)}, str(ckpt))
    assert load_checkpoint_file(str(ckpt))['w'].numel() == 1 << 18
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith('.tmp')]
    assert len(leftovers) == 1  # only the killed writer's partial temp file


def test_last_checkpoint_killed_mid_write_keeps_the_previous_name(tmp_path):
    # CheckpointHook writes last_checkpoint with a plain open(..., 'w').
    last = tmp_path / 'last_checkpoint'
    last.write_text(str(tmp_path / 'iter_100.pth'))
    result = _kill_mid_write(tmp_path, 8, 'last_checkpoint')
    assert result.returncode == -25, result.stderr[-2000:]
    assert last.read_text() == str(tmp_path / 'iter_100.pth')


def test_atomic_file_keeps_permissions_and_cleans_up_on_error(tmp_path):
    from dsc_mm.compat import atomic_file
    target = tmp_path / 'f.txt'
    target.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_file(target, 'w') as f:
            f.write('half')
            raise RuntimeError('writer failed')
    assert target.read_text() == 'old' and sorted(os.listdir(tmp_path)) == ['f.txt']
    with atomic_file(target, 'w') as f:
        f.write('new')
    umask = os.umask(0)
    os.umask(umask)
    assert target.read_text() == 'new'
    assert (target.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_a_config_text_is_formatted_once_and_unchanged(repo_root, monkeypatch):
    # mmengine formats the whole config with yapf at every pretty_text (five times per Runner);
    # dsc_mm.compat keeps the result for the same text. Count yapf's own calls.
    from yapf.yapflib import yapf_api

    from dsc_mm.compat import _format_once
    calls = []
    original = yapf_api.FormatCode

    def counting(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(yapf_api, 'FormatCode', counting)
    _format_once.cache_clear()
    cfg = Config.fromfile(str(repo_root / 'configs/detection/mask-rcnn_r18-fpn_tiny_scenes.py'))
    texts = [cfg.pretty_text for _ in range(3)]
    assert len(calls) == 1 and texts[0] == texts[1] == texts[2]
    # The text is yapf's formatting of mmengine's text, with mmengine's style.
    style = dict(based_on_style='pep8', blank_line_before_nested_class_or_def=True,
                 split_before_expression_after_opening_paren=True)
    assert texts[0] == original(calls[0], style_config=style)[0] != calls[0]
    cfg.train_cfg.max_iters = 7  # another text: formatted again
    assert 'max_iters=7' in cfg.pretty_text and len(calls) == 2
