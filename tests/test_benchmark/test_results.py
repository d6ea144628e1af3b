"""Per-cell records on disk: which records are usable, what is set aside, which evaluation a
finished run reports."""
import json
import os

import pytest

from dsc_mm.benchmark.results import (cell_problem, final_metrics, read_cell, read_json,
                                      set_aside, write_json_atomic)

EXPECTED = dict(method='dsc-km', protocol='voc-seg', seed=1)
COLUMNS = ('mIoU', 'aAcc')


def _done(**metrics):
    return dict(EXPECTED, status='done', metrics=metrics or dict(mIoU=40.5, aAcc=80))


@pytest.mark.parametrize('cell, problem', [
    (_done(), None),
    (dict(EXPECTED, status='failed', reason='out of memory'), None),
    ([1, 2], 'it holds a JSON list, not a cell record'),
    (dict(_done(), method='densecl'), "its method is 'densecl', not 'dsc-km'"),
    (dict(_done(), seed=0), 'its seed is 0, not 1'),
    ({k: v for k, v in _done().items() if k != 'protocol'}, "its protocol is None, not 'voc-seg'"),
    (dict(EXPECTED, status='failed'), 'a failed cell without a reason'),
    (dict(EXPECTED, status='failed', reason=3), 'a failed cell without a reason'),
    (dict(EXPECTED, status='running'), 'its status is \'running\', not "done" or "failed"'),
    (dict(EXPECTED, status='done'), 'a done cell without metrics'),
    (dict(EXPECTED, status='done', metrics=[40.5]), 'a done cell without metrics'),
    (_done(mIoU=40.5), 'a done cell without a number for aAcc'),
    (_done(mIoU='40.5', aAcc=None), 'a done cell without a number for mIoU, aAcc'),
    (_done(mIoU=40, aAcc=80.0, extra='text'), None),  # ints count; other keys are ignored
])
def test_cell_problem_names_the_first_reason(cell, problem):
    assert cell_problem(cell, EXPECTED, COLUMNS) == problem


def test_json_round_trip_and_absent_file(tmp_path):
    path = str(tmp_path / 'sub' / 'cell.json')
    assert read_json(path) is None
    write_json_atomic(path, dict(b=1, a=[1.5, None]))  # creates the folder
    assert read_json(path) == dict(a=[1.5, None], b=1)
    with open(path) as f:
        assert f.read() == '{\n  "a": [\n    1.5,\n    null\n  ],\n  "b": 1\n}'
    assert os.listdir(tmp_path / 'sub') == ['cell.json']  # no temporary left


def test_read_cell_returns_a_usable_record_untouched(tmp_path):
    path = str(tmp_path / 'cell.json')
    assert read_cell(path, EXPECTED, COLUMNS) == (None, '')
    write_json_atomic(path, _done())
    assert read_cell(path, EXPECTED, COLUMNS) == (_done(), '')
    assert os.listdir(tmp_path) == ['cell.json']


@pytest.mark.parametrize('content, reason', [
    ('{"method": "dsc-km", "proto', 'it is not valid JSON (Unterminated string'),
    (b'\xff\xfe', 'it is not valid JSON ('),
    (json.dumps(dict(EXPECTED, status='done')), 'a done cell without metrics'),
])
def test_read_cell_sets_an_unusable_file_aside_with_one_sentence(tmp_path, content, reason):
    path = str(tmp_path / 'cell.json')
    with open(path, 'wb' if isinstance(content, bytes) else 'w') as f:
        f.write(content)
    cell, message = read_cell(path, EXPECTED, COLUMNS)
    assert cell is None
    assert message.startswith(f'cell {path} is corrupt or partial ({reason}')
    assert message.endswith(f'); it was moved to {path}.corrupt and the cell will be computed '
                            f'again.')
    assert sorted(os.listdir(tmp_path)) == ['cell.json.corrupt']


def test_set_aside_never_overwrites_an_earlier_copy(tmp_path):
    path = str(tmp_path / 'cell.json')
    for expected in ('.corrupt', '.corrupt.1', '.corrupt.2'):
        with open(path, 'w') as f:
            f.write(expected)
        assert set_aside(path) == path + expected
        assert not os.path.exists(path)
    for suffix in ('.corrupt', '.corrupt.1', '.corrupt.2'):
        with open(path + suffix) as f:
            assert f.read() == suffix  # each copy kept as it was


def _scalars(work_dir, timestamp, *lines):
    folder = work_dir / timestamp / 'vis_data'
    folder.mkdir(parents=True)
    (folder / 'scalars.json').write_text(''.join(
        (line if isinstance(line, str) else json.dumps(line)) + '\n' for line in lines))


def test_final_metrics_is_the_last_evaluation_of_the_last_run(tmp_path):
    keys = dict(AP='coco/bbox_mAP', AP50='coco/bbox_mAP_50')
    assert final_metrics(str(tmp_path), keys) is None
    # A first run evaluated once; the resumed run (later timestamp) logs training steps, a
    # partial record, a line cut by a kill, an evaluation, more steps, and another cut line.
    _scalars(tmp_path, '20240101_000000',
             {'coco/bbox_mAP': 0.9, 'coco/bbox_mAP_50': 0.95, 'step': 10})
    _scalars(tmp_path, '20240102_000000',
             {'loss': 1.0, 'step': 11},
             {'coco/bbox_mAP': 0.1, 'step': 12},
             '{"coco/bbox_mAP": 0.2, "coco/bbox_m',
             {'coco/bbox_mAP': 0.41234, 'coco/bbox_mAP_50': 0.6, 'step': 20},
             {'loss': 0.5, 'step': 21},
             '{"coco/bbox_mAP": 0.7, "coco/bbox_m')
    assert final_metrics(str(tmp_path), keys, scale=100) == dict(AP=41.23, AP50=60.0)
    assert final_metrics(str(tmp_path), keys) == dict(AP=0.41, AP50=0.6)
    assert final_metrics(str(tmp_path), dict(AP='coco/bbox_mAP', L='loss')) is None


def test_final_metrics_reads_the_runs_in_timestamp_order(tmp_path):
    keys = dict(mIoU='mIoU')
    # Created newest first: the order of the timestamps decides, not the creation order.
    _scalars(tmp_path, '20240102_000000', {'mIoU': 62.0})
    _scalars(tmp_path, '20240101_000000', {'mIoU': 55.0})
    assert final_metrics(str(tmp_path), keys) == dict(mIoU=62.0)
