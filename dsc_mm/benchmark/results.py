"""Per-cell results on disk: read a run's final metrics, store each cell as an atomic JSON file."""
import glob
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

from ..utils import atomic_file


def write_json_atomic(path: str, obj) -> None:
    """Write ``obj`` as JSON so that ``path`` is either the old file or the complete new one."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with atomic_file(path, 'w') as f:
        json.dump(obj, f, indent=2, sort_keys=True)


def read_json(path: str) -> Optional[dict]:
    """The JSON object in ``path``, or None if the file does not exist."""
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def cell_problem(cell, expected: dict, columns: Sequence[str]) -> Optional[str]:
    """Why a cell record read from disk cannot be used (a short reason), or None if it can.

    Args:
        cell: The parsed JSON.
        expected: ``{'method': ..., 'protocol': ..., 'seed': ...}`` of the cell's file name.
        columns: The metric columns a ``done`` cell must hold (numbers).
    """
    if not isinstance(cell, dict):
        return f'it holds a JSON {type(cell).__name__}, not a cell record'
    for key, value in expected.items():
        if cell.get(key) != value:
            return f'its {key} is {cell.get(key)!r}, not {value!r}'
    status = cell.get('status')
    if status == 'failed':
        return None if isinstance(cell.get('reason'), str) else 'a failed cell without a reason'
    if status != 'done':
        return f'its status is {status!r}, not "done" or "failed"'
    metrics = cell.get('metrics')
    if not isinstance(metrics, dict):
        return 'a done cell without metrics'
    missing = [col for col in columns if not isinstance(metrics.get(col), (int, float))]
    if missing:
        return f'a done cell without a number for {", ".join(missing)}'
    return None


def read_cell(path: str, expected: dict, columns: Sequence[str]) -> Tuple[Optional[dict], str]:
    """Read a cell file; a corrupt or partial one is moved aside (kept, never deleted).

    Args:
        path: ``cells/<method>__<protocol>__seed<k>.json``.
        expected: See :func:`cell_problem`.
        columns: See :func:`cell_problem`.

    Returns:
        tuple: ``(cell, message)``: the record (None when absent or unusable) and, when the
        file was moved aside, one sentence saying which file, why, where it went and that the
        cell is run again; else ``''``.
    """
    if not osp.isfile(path):
        return None, ''
    try:
        with open(path) as f:
            cell = json.load(f)
        problem = cell_problem(cell, expected, columns)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problem = f'it is not valid JSON ({exc})'
    if problem is None:
        return cell, ''
    aside = set_aside(path)
    return None, (f'cell {path} is corrupt or partial ({problem}); it was moved to {aside} '
                  f'and the cell will be computed again.')


def set_aside(path: str) -> str:
    """Rename ``path`` to the first free ``<path>.corrupt[.N]`` and return the new name."""
    aside, n = f'{path}.corrupt', 1
    while osp.lexists(aside):
        aside, n = f'{path}.corrupt.{n}', n + 1
    os.replace(path, aside)
    return aside


def final_metrics(work_dir: str, keys: Dict[str, str], scale: float = 1.0) -> Optional[dict]:
    """The last evaluation of a finished mmengine run, as ``{column: value}``.

    mmengine's LocalVisBackend appends every logged step to ``<timestamp>/vis_data/scalars.json``
    (one JSON object per line; a resumed run starts a new timestamp folder). The evaluation is the
    last line that carries all metric ``keys``.

    Args:
        work_dir: The run's work dir.
        keys: Column name -> logged metric key (e.g. ``{'APbb': 'coco/bbox_mAP'}``).
        scale: Multiplier to the paper's percent.

    Returns:
        dict or None: None when the run has not evaluated yet.
    """
    found = None
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
                if all(k in record for k in keys.values()):
                    found = record
    if found is None:
        return None
    return {col: round(float(found[key]) * scale, 2) for col, key in keys.items()}
