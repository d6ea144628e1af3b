"""A checkpoint crafted to run code when unpickled is refused by every loader of the project, and
the code never runs (its marker file is never created)."""
import pickle

import pytest
import torch
from mmengine.runner import CheckpointLoader

from dsc_mm.utils import CheckpointError, load_checkpoint_file
from dsc_mm.utils.checkpoint import register_safe_globals
from rel_helpers import TINY_DSC, exit_message, load_tool, toy_runner

DET_R18 = 'configs/detection/faster-rcnn_r18-c4_tiny_scenes-voc.py'


def test_converter_cli_refuses(evil_checkpoint, tmp_path, capsys):
    path, marker = evil_checkpoint
    out = tmp_path / 'out.pth'
    assert load_tool('convert_checkpoint').main([str(path), str(out), '--to', 'mmdet']) == 1
    err = capsys.readouterr().err
    assert f'{path} was refused' in err and 'could execute code' in err
    assert not marker.exists() and not out.exists()


def test_train_pretrained_refuses(evil_checkpoint, tmp_path):
    path, marker = evil_checkpoint
    message = exit_message(load_tool('train').main,
                           [DET_R18, '--work-dir', tmp_path / 'w', '--pretrained', path])
    assert message.startswith(f'error: Checkpoint {path} was refused'), message
    assert not marker.exists()


def test_train_resume_path_refuses(evil_checkpoint, scenes, tmp_path):
    path, marker = evil_checkpoint
    work_dir = tmp_path / 'w'
    message = exit_message(load_tool('train').main, [
        TINY_DSC, '--work-dir', work_dir, '--resume', path, '--cfg-options',
        f'train_dataloader.dataset.data_root={scenes}'])
    assert message.startswith(f'error: Checkpoint {path} was refused'), message
    assert not marker.exists() and not work_dir.exists()


class _GetattrOf:
    """Unpickling this calls ``getattr(HistoryBuffer, name)``: the one ``getattr`` that the
    allowlist admits, and only for HistoryBuffer's statistics."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return (getattr, (HistoryBuffer, self.name))


def test_train_resume_of_the_latest_checkpoint_refuses(evil_checkpoint, scenes, tmp_path):
    # --resume without a path: the work dir's last_checkpoint names the file to load.
    path, marker = evil_checkpoint
    work_dir = tmp_path / 'w'
    work_dir.mkdir()
    latest = work_dir / 'iter_2.pth'
    latest.write_bytes(path.read_bytes())
    (work_dir / 'last_checkpoint').write_text(str(latest))
    message = exit_message(load_tool('train').main, [
        TINY_DSC, '--work-dir', work_dir, '--resume', '--cfg-options',
        f'train_dataloader.dataset.data_root={scenes}'])
    assert message.startswith(f'error: Checkpoint {latest} was refused: '), message
    assert not marker.exists() and sorted(p.name for p in work_dir.iterdir()) == [
        'iter_2.pth', 'last_checkpoint']


def test_mmengine_loader_loads_mmengine_checkpoints_and_refuses_code(evil_checkpoint, tmp_path):
    # What Runner.resume / load_from call: torch.load without weights_only (torch 2.14:
    # weights_only=True). torch alone refuses the code-executing file, but also every checkpoint
    # mmengine writes (meta.message_hub holds HistoryBuffers of numpy values); dsc_mm's
    # allowlist is what makes the second load and keeps refusing the first.
    path, marker = evil_checkpoint
    toy_runner(tmp_path / 'toy', max_iters=2).train()
    real = str(tmp_path / 'toy' / 'iter_2.pth')
    loaded = CheckpointLoader.load_checkpoint(real, map_location='cpu')
    assert type(loaded['message_hub']['log_scalars']['train/loss']).__name__ == 'HistoryBuffer'
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()
    # The control: without the allowlist the same loader refuses mmengine's own checkpoint.
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        with pytest.raises(pickle.UnpicklingError):
            CheckpointLoader.load_checkpoint(real, map_location='cpu')
    finally:
        torch.serialization.add_safe_globals(saved)
        register_safe_globals()


def test_allowlist_admits_only_history_buffer_statistics_through_getattr(tmp_path):
    # HistoryBuffer pickles its statistics as getattr(HistoryBuffer, 'mean'); the allowlist
    # replaces builtins.getattr by a stand-in that refuses any other attribute.
    good, bad = tmp_path / 'mean.pth', tmp_path / 'init.pth'
    torch.save({'statistic': _GetattrOf('mean')}, good)
    torch.save({'statistic': _GetattrOf('__init__')}, bad)
    assert load_checkpoint_file(str(good))['statistic'].__name__ == 'mean'
    with pytest.raises(CheckpointError, match=r'was refused: .*refused getattr\(.*HistoryBuffer'
                                              r".*'__init__'\)"):
        load_checkpoint_file(str(bad))
    with pytest.raises(pickle.UnpicklingError, match=r'refused getattr'):
        CheckpointLoader.load_checkpoint(str(bad), map_location='cpu')


def test_benchmark_checkpoint_row_refuses(evil_checkpoint, tmp_path):
    # tools/benchmark.py --checkpoint evil=PATH: the runner converts the file before any
    # fine-tuning; conversion is refused and the row's fine-tuning cells are skipped.
    from dsc_mm.benchmark import SUITES, BenchmarkRunner, select_methods
    path, marker = evil_checkpoint
    suite = SUITES['tiny']
    methods = tuple(m for m in select_methods(suite, None, [f'evil={path}'])
                    if m.checkpoint is not None)
    lines = []
    runner = BenchmarkRunner(suite, methods, str(tmp_path / 'bench'), data=str(tmp_path),
                             log=lines.append)
    cells = runner.run()
    assert not marker.exists()
    assert any('conversion of evil failed' in line and 'was refused' in line for line in lines)
    assert cells and all(cell.get('status') == 'failed' for cell in cells), cells


def test_train_load_from_refuses_with_one_sentence(evil_checkpoint, scenes, tmp_path):
    # Fine-tuning from a checkpoint (load_from, no resume): mmengine alone refuses it with a
    # traceback that ends on torch's advice to retry with weights_only=False.
    path, marker = evil_checkpoint
    work_dir = tmp_path / 'w'
    message = exit_message(load_tool('train').main, [
        TINY_DSC, '--work-dir', work_dir, '--cfg-options', f'load_from={path}',
        f'train_dataloader.dataset.data_root={scenes}'])
    assert message.startswith(f'error: Checkpoint {path} was refused: ') and \
        'weights_only=False' not in message and '\n' not in message, message
    assert not marker.exists() and not work_dir.exists()


def test_test_tool_refuses_with_one_sentence(evil_checkpoint, tmp_path):
    path, marker = evil_checkpoint
    message = exit_message(load_tool('test').main,
                           [DET_R18, str(path), '--work-dir', tmp_path / 'w'])
    assert message.startswith(f'error: Checkpoint {path} was refused: '), message
    assert not marker.exists() and not (tmp_path / 'w').exists()
