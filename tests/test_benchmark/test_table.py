"""The table builder: mean +- std over seeds, missing and failed cells shown as such."""
import math

import pytest

from dsc_mm.benchmark import Method, Protocol, aggregate, summarize, to_markdown

METHODS = (Method('random', 'Random init'), Method('dsc-km', 'DSC-KM', 'cfg.py'))
PROTOCOLS = (Protocol('voc-det', 'VOC det', 'det.py', {'AP': 'a', 'AP50': 'b'}),
             Protocol('voc-seg', 'VOC seg', 'seg.py', {'mIoU': 'mIoU'}))


def _cell(method, protocol, seed, **metrics):
    return dict(method=method, protocol=protocol, seed=seed, status='done', metrics=metrics)


def test_summarize_mean_and_sample_std():
    s = summarize([50.0, 52.0, 54.0])
    assert s['mean'] == pytest.approx(52.0) and s['std'] == pytest.approx(2.0) and s['n'] == 3
    assert summarize([7.5]) == dict(mean=7.5, std=0.0, n=1)
    assert summarize([]) == dict(mean=None, std=None, n=0)


def test_table_rows_columns_and_missing_cells():
    cells = [
        _cell('dsc-km', 'voc-det', 0, AP=50.0, AP50=80.0),
        _cell('dsc-km', 'voc-det', 1, AP=52.0, AP50=82.0),
        _cell('random', 'voc-seg', 0, mIoU=40.0),
        dict(method='random', protocol='voc-det', seed=0, status='failed', reason='x'),
    ]
    table = aggregate(cells, METHODS, PROTOCOLS)
    assert table['dsc-km']['voc-det']['AP']['mean'] == pytest.approx(51.0)
    assert table['dsc-km']['voc-det']['AP']['std'] == pytest.approx(math.sqrt(2.0))
    assert table['dsc-km']['voc-seg']['mIoU']['n'] == 0
    md = to_markdown(table, METHODS, PROTOCOLS, seeds=2)
    rows = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]]
            for line in md.splitlines() if line.startswith('| ') and 'pre-train' not in line}
    assert rows['DSC-KM'] == ['51.0 ± 1.4', '81.0 ± 1.4', '–']
    # A failed cell says so; a cell never run stays empty: nothing is invented.
    assert rows['Random init'] == ['failed', 'failed', '40.0']


def test_failed_cells_do_not_count_as_values():
    cells = [_cell('random', 'voc-seg', 0, mIoU=40.0),
             dict(method='random', protocol='voc-seg', seed=1, status='failed', reason='x')]
    summary = aggregate(cells, METHODS, PROTOCOLS)['random']['voc-seg']
    assert summary['mIoU'] == dict(mean=40.0, std=0.0, n=1) and summary['_failed'] == 1
