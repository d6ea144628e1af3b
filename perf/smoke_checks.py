"""Check the losses a training run logged (perf/gpu_smoke.sh): present, finite, one line.

Reads the newest ``*/vis_data/scalars.json`` under a work dir (mmengine's local
visualizer backend), prints ``last loss X; terms ...`` and exits 1 with one sentence when a
``--require``d term never appears, a logged loss is not finite, or nothing was logged.

Usage::

    python perf/smoke_checks.py WORK_DIR --require loss_instance loss_pixel loss_semantic
"""
import argparse
import glob
import json
import math
import os
from typing import Dict, List, Sequence


def logged_rows(work_dir: str) -> List[Dict]:
    """The training rows (those with a ``loss``) of the newest run under ``work_dir``."""
    files = sorted(glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        return []
    with open(files[-1]) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [row for row in rows if 'loss' in row]


def check(rows: Sequence[Dict], required: Sequence[str]) -> str:
    """One line on the losses of ``rows``; raises ``ValueError`` (one sentence) on a failure."""
    if not rows:
        raise ValueError('no training loss was logged (no scalars.json row with "loss").')
    seen = sorted({key for row in rows for key in row if key.startswith('loss')})
    missing = [key for key in required if key not in seen]
    if missing:
        raise ValueError(f'the run never logged {", ".join(missing)} (logged: '
                         f'{", ".join(seen)}).')
    bad = [(row.get('iter', row.get('step')), key) for row in rows for key in seen
           if key in row and not math.isfinite(row[key])]
    if bad:
        raise ValueError(f'non-finite loss logged at (iteration, term) {bad[0]}.')
    return f'last loss {rows[-1]["loss"]:.3f}; terms {" ".join(seen)} finite'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('work_dir')
    parser.add_argument('--require', nargs='*', default=[], help='loss terms that must appear')
    args = parser.parse_args(argv)
    try:
        print(check(logged_rows(args.work_dir), args.require))
    except ValueError as exc:
        print(f'{args.work_dir}: {exc}')
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
