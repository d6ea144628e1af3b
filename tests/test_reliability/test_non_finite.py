"""NonFiniteLossHook: a NaN/inf loss stops training, names the term, saves no bad checkpoint."""
import math
import re

import pytest
import torch

from dsc_mm.engine.hooks import NonFiniteLossError, NonFiniteLossHook, non_finite_terms
from rel_helpers import TINY_DSC, run_tool, toy_runner


def test_non_finite_terms_names_each_bad_term_before_the_total():
    outputs = dict(loss=torch.tensor(float('nan')), loss_instance=torch.tensor(1.),
                   loss_semantic=torch.tensor(float('nan')), loss_pixel=float('inf'),
                   cluster_entropy=torch.tensor(float('nan')))  # logged statistic, not a loss
    assert non_finite_terms(outputs) == ['loss_semantic is nan', 'loss_pixel is inf']
    # A bad total without a bad term (e.g. an overflowing sum) is still reported.
    assert non_finite_terms(dict(loss=float('inf'), loss_a=1.)) == ['loss is inf']
    assert non_finite_terms(dict(loss=torch.tensor(2.), loss_x=3.)) == []
    with pytest.raises(ValueError, match='interval'):
        NonFiniteLossHook(interval=0)


def test_nan_at_iteration_3_stops_before_its_checkpoint(tmp_path):
    runner = toy_runner(tmp_path, max_iters=5, hooks=['NonFiniteLossHook'], interval=1,
                        nan_at=3)
    with pytest.raises(NonFiniteLossError, match=r'^loss_toy is nan at iteration 3; ') as info:
        runner.train()
    assert str(tmp_path / 'iter_2.pth') in str(info.value)
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_1.pth', 'iter_2.pth']
    assert (tmp_path / 'last_checkpoint').read_text().strip().endswith('iter_2.pth')
    # The last good checkpoint holds finite weights and resumes.
    resumed = toy_runner(tmp_path, max_iters=2, hooks=['NonFiniteLossHook'], resume=True)
    resumed.load_or_resume()
    assert resumed.iter == 2
    assert all(torch.isfinite(v).all() for v in resumed.model.state_dict().values())


def test_without_the_hook_the_nan_state_is_checkpointed(tmp_path):
    # The control: mmengine alone saves the NaN weights and names them in last_checkpoint.
    toy_runner(tmp_path, max_iters=3, interval=1, nan_at=3).train()
    weight = torch.load(tmp_path / 'iter_3.pth', weights_only=False)['state_dict']
    assert not all(math.isfinite(float(w)) for w in weight['linear.weight'].flatten())


def test_dsc_divergence_stops_tools_train_with_one_sentence(scenes, tmp_path):
    # lr=1e30 sends the DSC weights to inf at the first step: the second loss is not finite.
    work_dir = tmp_path / 'work'
    result = run_tool([
        'tools/train.py', TINY_DSC, '--work-dir', work_dir, '--cfg-options',
        f'train_dataloader.dataset.data_root={scenes}', 'train_cfg.max_iters=4',
        'optim_wrapper.optimizer.lr=1e30', 'default_hooks.checkpoint.interval=1'])
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r'error: loss_\w+ is (nan|inf)(, loss_\w+ is (nan|inf))* at iteration 2; '
                        r'.*iter_1\.pth was kept.*--resume\.', last), last
    assert 'Traceback' not in result.stderr
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['iter_1.pth']
    # Enabled by default: the dumped config lists the hook.
    dumped = (work_dir / 'dsc-km_resnet18_tiny_reliability.py').read_text()
    assert "type='NonFiniteLossHook'" in dumped
