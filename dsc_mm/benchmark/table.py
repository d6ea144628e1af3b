"""The paper-style table: mean +- std over seeds with their count n; a missing cell is shown as
missing, never filled."""
import statistics
from typing import Dict, List, Sequence

MISSING = '–'


def summarize(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation (0 for one value) and count."""
    values = list(values)
    if not values:
        return dict(mean=None, std=None, n=0)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return dict(mean=statistics.fmean(values), std=std, n=len(values))


def aggregate(cells: List[dict], methods, protocols) -> Dict[str, Dict[str, dict]]:
    """``{method key: {protocol key: {column: summary, ...}}}`` from finished cell records.

    Cells that failed or are absent contribute nothing; their count shows in the summary.
    """
    table = {}
    for m in methods:
        row = table.setdefault(m.key, {})
        for p in protocols:
            done = [c for c in cells if c['method'] == m.key and c['protocol'] == p.key
                    and c.get('status') == 'done']
            failed = [c for c in cells if c['method'] == m.key and c['protocol'] == p.key
                      and c.get('status') == 'failed']
            row[p.key] = {col: summarize([c['metrics'][col] for c in done])
                          for col in p.metrics}
            row[p.key]['_failed'] = len(failed)
    return table


def format_cell(summary: dict, failed: int = 0) -> str:
    """``57.0 ± 0.2 (n=5)``, ``40.1 (n=1)``; failed runs are counted, never averaged in."""
    if summary['n'] == 0:
        return 'failed (n=0)' if failed else MISSING
    text = f"{summary['mean']:.1f}"
    if summary['n'] > 1:
        text += f" ± {summary['std']:.1f}"
    return text + (f" (n={summary['n']}, {failed} failed)" if failed else f" (n={summary['n']})")


def to_markdown(table: Dict[str, Dict[str, dict]], methods, protocols) -> str:
    """Render the aggregate as a markdown table in the paper's layout (one row per method)."""
    head = ['pre-train']
    for p in protocols:
        head += [f'{p.title} {col}' if len(p.metrics) == 1 else f'{col}' for col in p.metrics]
    lines = []
    # A group line naming the protocols whose columns are plain metric names.
    groups = [f'{p.title}: {" / ".join(p.metrics)}' for p in protocols if len(p.metrics) > 1]
    if groups:
        lines.append('Columns: ' + '; '.join(groups) + '.')
        lines.append('')
    lines += ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for m in methods:
        cells = [m.title]
        for p in protocols:
            entry = table[m.key][p.key]
            cells += [format_cell(entry[col], entry['_failed']) for col in p.metrics]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
    lines.append(f'Mean ± sample std over the n fine-tuning seeds of each cell (std only where '
                 f'n > 1); {MISSING} = not run yet.')
    return '\n'.join(lines) + '\n'
