"""Loss-term curves of a training run, read from mmengine's ``vis_data/scalars.json``."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

DEFAULT_KEYS = ('raw_instance', 'raw_pixel', 'raw_semantic', 'loss', 'cluster_nonempty',
                'cluster_entropy')


def find_scalars(work_dir: str) -> str:
    """Return the newest ``<work_dir>/<timestamp>/vis_data/scalars.json`` (or a direct path).

    Raises:
        FileNotFoundError: With one sentence naming the directory and what to do.
    """
    if osp.isfile(work_dir):
        return work_dir
    candidates = [osp.join(work_dir, 'vis_data', 'scalars.json')]
    if osp.isdir(work_dir):
        candidates += sorted((osp.join(work_dir, d, 'vis_data', 'scalars.json')
                              for d in os.listdir(work_dir)), reverse=True)
    for path in candidates:
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'No vis_data/scalars.json under {work_dir}; pass the --work-dir of '
                            f'a training run that logged at least one interval.')


def read_scalars(path: str) -> Dict[str, List[Tuple[int, float]]]:
    """Parse the JSON-lines file into ``{key: [(iter, value), ...]}`` (training records only)."""
    series: Dict[str, List[Tuple[int, float]]] = {}
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f'{path} line {line_no} is not JSON ({exc.msg}); the file may '
                                 f'be truncated by a killed run: delete that line.') from None
            step = record.get('iter', record.get('step'))
            if step is None:
                continue
            for key, value in record.items():
                if key not in ('iter', 'step', 'epoch') and isinstance(value, (int, float)):
                    series.setdefault(key, []).append((int(step), float(value)))
    return series


def window_means(points: Sequence[Tuple[int, float]], num_iters: int = 20,
                 max_iter: Optional[int] = None) -> Tuple[float, float]:
    """Means of the values logged in the first and in the last ``num_iters`` iterations."""
    if not points:
        raise ValueError('No logged values to average.')
    first_iter, last_iter = points[0][0], max_iter or points[-1][0]
    first = [v for i, v in points if i < first_iter + num_iters]
    last = [v for i, v in points if i > last_iter - num_iters]
    return sum(first) / len(first), sum(last) / len(last)


def plot_curves(series: Dict[str, List[Tuple[int, float]]], keys: Sequence[str], out: str,
                title: str = '') -> List[str]:
    """One panel per key present in ``series`` (3 per row); writes a PNG, returns the keys drawn."""
    import matplotlib
    matplotlib.use('Agg')  # files only, no display on a CPU server
    import matplotlib.pyplot as plt

    present = [k for k in keys if k in series]
    if not present:
        raise ValueError(f'None of the keys {list(keys)} was logged; available: '
                         f'{sorted(series)}.')
    ncols = min(3, len(present))
    nrows = -(-len(present) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.7 * nrows), squeeze=False)
    for ax in axes.flat[len(present):]:
        ax.axis('off')
    for ax, key in zip(axes.flat, present):
        iters, values = zip(*series[key])
        ax.plot(iters, values, linewidth=1.2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel('iteration', fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return present
