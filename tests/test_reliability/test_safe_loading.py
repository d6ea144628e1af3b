"""A checkpoint crafted to run code when unpickled is refused by every loader of the project, and
the code never runs (its marker file is never created)."""
import pickle

import pytest
from mmengine.runner import CheckpointLoader

from rel_helpers import TINY_DSC, exit_message, load_tool

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


def test_mmengine_loader_used_by_resume_refuses(evil_checkpoint):
    # What Runner.resume / load_from call: torch.load without weights_only, which torch 2.14
    # turns into weights_only=True; the dsc_mm allowlist does not admit the payload.
    path, marker = evil_checkpoint
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()


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
