"""The table builder and chart: mean ± std over seeds with n in every cell; missing and failed
cells shown as such; error bars only where a cell has more than one seed."""
import math

import pytest

from dsc_mm.benchmark import Method, Protocol, aggregate, summarize, to_markdown
from dsc_mm.benchmark.table import format_cell
from dsc_mm.benchmark.charts import transfer_figure

METHODS = (Method('random', 'Random init'), Method('dsc-km', 'DSC-KM', 'cfg.py'))
PROTOCOLS = (Protocol('voc-det', 'VOC det', 'det.py', {'AP': 'a', 'AP50': 'b'}),
             Protocol('voc-seg', 'VOC seg', 'seg.py', {'mIoU': 'mIoU'}))


def _cell(method, protocol, seed, **metrics):
    return dict(method=method, protocol=protocol, seed=seed, status='done', metrics=metrics)


def _rows(markdown):
    return {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]]
            for line in markdown.splitlines() if line.startswith('| ') and 'pre-train' not in line}


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
    rows = _rows(to_markdown(table, METHODS, PROTOCOLS))
    # Every cell shows its n; the std only where n > 1.
    assert rows['DSC-KM'] == ['51.0 ± 1.4 (n=2)', '81.0 ± 1.4 (n=2)', '–']
    # A failed cell says so; a cell never run stays empty: nothing is invented.
    assert rows['Random init'] == ['failed (n=0)', 'failed (n=0)', '40.0 (n=1)']


def test_markdown_is_the_papers_layout_line_by_line():
    cells = [_cell('dsc-km', 'voc-det', 0, AP=50.0, AP50=80.0),
             _cell('dsc-km', 'voc-det', 1, AP=52.0, AP50=82.0),
             _cell('random', 'voc-seg', 0, mIoU=40.0)]
    markdown = to_markdown(aggregate(cells, METHODS, PROTOCOLS), METHODS, PROTOCOLS)
    # A one-metric protocol titles its column; a several-metric one is named in the group line.
    assert markdown == (
        'Columns: VOC det: AP / AP50.\n'
        '\n'
        '| pre-train | AP | AP50 | VOC seg mIoU |\n'
        '|---|---|---|---|\n'
        '| Random init | – | – | 40.0 (n=1) |\n'
        '| DSC-KM | 51.0 ± 1.4 (n=2) | 81.0 ± 1.4 (n=2) | – |\n'
        '\n'
        'Mean ± sample std over the n fine-tuning seeds of each cell (std only where n > 1); '
        '– = not run yet.\n')
    # Two several-metric protocols: one group line naming both.
    coco = Protocol('coco-det', 'COCO det', 'c.py', {'APbb': 'x', 'APmk': 'y'})
    both = (PROTOCOLS[0], coco)
    assert to_markdown(aggregate(cells, METHODS, both), METHODS, both).split('\n')[0] == \
        'Columns: VOC det: AP / AP50; COCO det: APbb / APmk.'
    # Only one-metric protocols: no group line.
    assert to_markdown(aggregate(cells, METHODS, PROTOCOLS[1:]), METHODS,
                       PROTOCOLS[1:]).startswith('| pre-train | VOC seg mIoU |\n|---|---|\n')


def test_format_cell_counts_failures_only_when_given():
    assert format_cell(dict(mean=None, std=None, n=0)) == '–'
    assert format_cell(dict(mean=40.04, std=0.0, n=1)) == '40.0 (n=1)'
    assert format_cell(dict(mean=40.06, std=0.26, n=3), 2) == '40.1 ± 0.3 (n=3, 2 failed)'


def test_failed_cells_do_not_count_as_values():
    cells = [_cell('random', 'voc-seg', 0, mIoU=40.0),
             dict(method='random', protocol='voc-seg', seed=1, status='failed', reason='x')]
    table = aggregate(cells, METHODS, PROTOCOLS)
    summary = table['random']['voc-seg']
    assert summary['mIoU'] == dict(mean=40.0, std=0.0, n=1) and summary['_failed'] == 1
    assert _rows(to_markdown(table, METHODS, PROTOCOLS))['Random init'][-1] == \
        '40.0 (n=1, 1 failed)'


def test_chart_error_bars_only_where_n_above_one():
    cells = [_cell('dsc-km', 'voc-seg', seed, mIoU=value)
             for seed, value in enumerate((60.0, 62.0, 64.0))]
    cells.append(_cell('random', 'voc-seg', 0, mIoU=40.0))
    fig = transfer_figure(aggregate(cells, METHODS, PROTOCOLS), METHODS, PROTOCOLS, 'test')
    seg_axis = fig.axes[-1]  # columns in table order: AP, AP50, mIoU
    bars = [c for c in seg_axis.containers if c.__class__.__name__ == 'BarContainer']
    assert [round(b.patches[0].get_height(), 6) for b in bars] == [40.0, 62.0]
    errorbars = [c for c in seg_axis.containers if c.__class__.__name__ == 'ErrorbarContainer']
    assert len(errorbars) == 1  # DSC-KM (n=3) only; Random init has one seed
    segments = errorbars[0].lines[2][0].get_segments()
    (_, low), (_, high) = segments[0]
    assert (low, high) == (pytest.approx(60.0), pytest.approx(64.0))  # mean ± sample std 2.0
    assert {t.get_text() for t in seg_axis.texts} == {'n=1', 'n=3'}
    # Missing cells are labelled, not drawn as zero.
    assert {t.get_text() for t in fig.axes[0].texts} == {'n/a'}
    import matplotlib.pyplot as plt
    plt.close(fig)
