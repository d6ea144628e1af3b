"""tools/plot_curves.py and dsc_mm.visualization.curves on a synthetic scalars.json."""
import json
import subprocess
import sys

import pytest

from dsc_mm.visualization import find_scalars, read_scalars, window_means


def _write_run(work_dir, num_iters=60, interval=10):
    vis = work_dir / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    with open(vis / 'scalars.json', 'w') as f:
        for it in range(interval, num_iters + 1, interval):
            f.write(json.dumps(dict(iter=it, lr=0.03, loss=10 - it / 10, raw_instance=5 - it / 20,
                                    cluster_nonempty=8.0)) + '\n')
    return vis / 'scalars.json'


def test_read_and_window_means(tmp_path):
    path = _write_run(tmp_path)
    assert find_scalars(str(tmp_path)) == str(path)
    series = read_scalars(str(path))
    assert [i for i, _ in series['loss']] == [10, 20, 30, 40, 50, 60]
    first, last = window_means(series['loss'], num_iters=20)
    assert first == pytest.approx((9 + 8) / 2) and last == pytest.approx((5 + 4) / 2)


def test_missing_run_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        find_scalars(str(tmp_path))


def test_tool_writes_a_png_and_prints_means(tmp_path, repo_root):
    _write_run(tmp_path)
    out = tmp_path / 'fig' / 'curves.png'
    result = subprocess.run([sys.executable, str(repo_root / 'tools' / 'plot_curves.py'),
                             str(tmp_path), '--out', str(out)],
                            capture_output=True, text=True, check=True)
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'raw_instance' in result.stdout and 'raw_semantic' not in result.stdout
    line = next(l for l in result.stdout.splitlines() if l.startswith('loss '))
    assert [float(v) for v in line.split()[1:]] == [8.5, 4.5]
