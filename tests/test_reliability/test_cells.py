"""Benchmark cell records: a record that names its cell but cannot be used (a done cell without
metrics or with a non-numeric metric, a failed cell without a reason, an unknown status) is
named with its reason, moved aside (kept) and computed again; usable records are read as is."""
import json

import pytest

from dsc_mm.benchmark.results import read_cell

EXPECTED = dict(method='dsc-km', protocol='voc-seg', seed=0)
COLUMNS = ('mIoU', 'aAcc')


@pytest.mark.parametrize('fields, reason', [
    (dict(status='done'), 'a done cell without metrics'),
    (dict(status='done', metrics=[41.5, 80.0]), 'a done cell without metrics'),
    (dict(status='done', metrics=dict(mIoU='41.5', aAcc=80.0)),
     'a done cell without a number for mIoU'),
    (dict(status='done', metrics=dict(mIoU=None)), 'a done cell without a number for mIoU, aAcc'),
    (dict(status='failed'), 'a failed cell without a reason'),
    (dict(status='failed', reason=['exit 1']), 'a failed cell without a reason'),
    (dict(status='running'), "its status is 'running', not \"done\" or \"failed\""),
    (dict(status='done', metrics=dict(mIoU=41.5, aAcc=80.0), seed=1), 'its seed is 1, not 0'),
])
def test_unusable_record_is_named_with_its_reason_and_moved_aside(tmp_path, fields, reason):
    path = tmp_path / 'dsc-km__voc-seg__seed0.json'
    content = json.dumps(dict(EXPECTED, **fields))
    path.write_text(content)
    cell, message = read_cell(str(path), EXPECTED, COLUMNS)
    aside = tmp_path / (path.name + '.corrupt')
    assert cell is None
    assert message == (f'cell {path} is corrupt or partial ({reason}); it was moved to {aside} '
                       f'and the cell will be computed again.')
    assert not path.exists() and aside.read_text() == content  # kept, never deleted


@pytest.mark.parametrize('fields', [
    dict(status='done', metrics=dict(mIoU=41.5, aAcc=80)),  # an int is a number
    dict(status='failed', reason='exit 1: out of memory'),  # a failed cell needs no metrics
])
def test_usable_record_is_read_as_is(tmp_path, fields):
    path = tmp_path / 'cell.json'
    record = dict(EXPECTED, **fields)
    path.write_text(json.dumps(record))
    assert read_cell(str(path), EXPECTED, COLUMNS) == (record, '')
    assert path.exists() and not list(tmp_path.glob('*.corrupt*'))
