"""perf/smoke_checks.py: a run's logged losses must hold every required term, all finite."""
import json

import pytest


@pytest.fixture(scope='module')
def checks(load_script):
    return load_script('perf/smoke_checks.py')


def _log(tmp_path, rows):
    folder = tmp_path / '20260101_000000' / 'vis_data'
    folder.mkdir(parents=True)
    (folder / 'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in rows))


ROWS = [dict(loss=6.0, loss_instance=6.0, iter=5, lr=0.03),
        dict(loss=5.0, loss_instance=3.0, loss_pixel=1.5, loss_semantic=0.5, iter=10)]


def test_a_run_with_every_term_finite_passes(checks, tmp_path, capsys):
    _log(tmp_path, ROWS)
    assert checks.main([str(tmp_path), '--require', 'loss_instance', 'loss_semantic']) == 0
    assert capsys.readouterr().out.strip() == (
        'last loss 5.000; terms loss loss_instance loss_pixel loss_semantic finite')


@pytest.mark.parametrize('rows, message', [
    (ROWS[:1], 'never logged loss_semantic'),
    (ROWS + [dict(loss=float('nan'), loss_semantic=float('nan'), iter=15)],
     "non-finite loss logged at (iteration, term) (15, 'loss')"),
    ([dict(lr=0.1, iter=5)], 'no training loss was logged'),
])
def test_missing_term_non_finite_loss_or_no_log_fail(checks, tmp_path, capsys, rows, message):
    _log(tmp_path, rows)
    assert checks.main([str(tmp_path), '--require', 'loss_semantic']) == 1
    assert message in capsys.readouterr().out
