"""The paper-style table: mean +- std over seeds; a missing cell is shown as missing, never filled."""
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


def _format(summary: dict, failed: int) -> str:
    if summary['n'] == 0:
        return 'failed' if failed else MISSING
    text = f"{summary['mean']:.1f}"
    if summary['n'] > 1:
        text += f" ± {summary['std']:.1f}"
    return text


def to_markdown(table: Dict[str, Dict[str, dict]], methods, protocols, seeds: int) -> str:
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
            cells += [_format(entry[col], entry['_failed']) for col in p.metrics]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
    lines.append(f'Mean ± sample std over {seeds} fine-tuning seed(s); {MISSING} = not run yet.')
    return '\n'.join(lines) + '\n'
