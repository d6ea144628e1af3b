"""NonFiniteLossHook: a NaN/inf loss or a divergent update stops training, names what went wrong,
saves no bad checkpoint, and the checkpoint it names resumes and trains on."""
import math
import re
import shutil

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from dsc_mm.engine.hooks import NonFiniteLossError, NonFiniteLossHook, non_finite_terms
from dsc_mm.engine.hooks.non_finite import update_ratio
from dsc_mm.utils import load_checkpoint_file
from rel_helpers import (REPO_ROOT, TINY_DSC, TINY_DSC_ITERS, exit_message, load_tool,
                         run_tool, toy_runner)

SPIKE = 'tests/test_reliability/configs/dsc-km_resnet18_tiny_spike.py'
# test_resume.py reads the same session run (tiny_dsc_run): one xdist worker builds it once.
pytestmark = pytest.mark.xdist_group('tiny_dsc_run')


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


@pytest.mark.parametrize('bounded', [True, False])
def test_nan_gradient_with_a_finite_loss_stops_on_the_parameters(tmp_path, bounded):
    # The loss of iteration 3 is finite, its gradient NaN: only the parameters tell. With the
    # update bound the ratio is NaN; without it (max_update_ratio=None) their norm is checked.
    from mmengine.registry import HOOKS
    runner = toy_runner(tmp_path, max_iters=5, interval=1, nan_grad_at=3)
    bound = {} if bounded else dict(max_update_ratio=None)
    runner.register_hook(HOOKS.build(dict(type='NonFiniteLossHook', **bound)))
    with pytest.raises(NonFiniteLossError, match=r'^the parameters are not finite after the '
                                                 r'optimizer step at iteration 3; training '
                                                 r'stopped before saving this state \(the last '
                                                 r'good checkpoint .*iter_2\.pth was kept\)'):
        runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_1.pth', 'iter_2.pth']
    assert _all_finite(load_checkpoint_file(str(tmp_path / 'iter_2.pth')))


def test_without_the_hook_the_nan_gradient_state_is_checkpointed(tmp_path):
    # The control of the test above: the loss was finite, so only the state shows the NaN.
    toy_runner(tmp_path, max_iters=3, interval=1, nan_grad_at=3).train()
    saved = load_checkpoint_file(str(tmp_path / 'iter_3.pth'))
    assert torch.isnan(saved['state_dict']['linear.weight']).all()
    assert not _all_finite(saved)


class _BreakMomentum(Hook):
    """After the step of iteration ``at``, SGD's momentum becomes inf while the parameters
    stay finite (what an overflowing gradient does to an Adam moment before it reaches the
    weights); runs before NonFiniteLossHook."""

    priority = 'HIGHEST'

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            for state in runner.optim_wrapper.optimizer.state.values():
                state['momentum_buffer'].fill_(float('inf'))


@pytest.mark.parametrize('hooked', [True, False])
def test_non_finite_optimizer_state_stops_before_its_checkpoint(tmp_path, hooked):
    from mmengine.registry import HOOKS
    runner = toy_runner(tmp_path, max_iters=3, interval=1)
    runner.register_hook(_BreakMomentum(at=3))
    if not hooked:  # the control: mmengine saves the inf momentum as the last checkpoint
        runner.train()
        assert not _all_finite(load_checkpoint_file(str(tmp_path / 'iter_3.pth')))
        return
    runner.register_hook(HOOKS.build(dict(type='NonFiniteLossHook')))
    with pytest.raises(NonFiniteLossError, match=r'^the optimizer state \(momentum/moments\) is '
                                                 r'not finite at iteration 3; '):
        runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_1.pth', 'iter_2.pth']
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())


def test_a_config_that_lists_a_reliability_hook_keeps_its_settings(tmp_path, load_script):
    # tools/train.py adds both hooks to every config; one the config lists keeps its own
    # arguments (and is not added twice), and the dumped config shows what the run used.
    from dsc_mm.apis import build_runner, merge_args
    from dsc_mm.apis.checks import load_config
    from dsc_mm.engine.hooks import RNGStateHook
    config = tmp_path / 'own_hook.py'
    config.write_text(f"_base_ = '{REPO_ROOT / TINY_DSC}'\n"
                      "custom_hooks = [dict(type='NonFiniteLossHook', interval=2, "
                      "max_update_ratio=None)]\n")
    train = load_script('tools/train.py')
    args = train.parse_args([str(config), '--work-dir', str(tmp_path / 'work')])
    cfg = merge_args(load_config(str(config)), args)
    assert [h['type'] for h in cfg.custom_hooks] == ['NonFiniteLossHook', 'RNGStateHook']
    runner = build_runner(cfg)
    ours = [h for h in runner.hooks if isinstance(h, NonFiniteLossHook)]
    assert len(ours) == 1 and (ours[0].interval, ours[0].max_update_ratio) == (2, None)
    assert sum(isinstance(h, RNGStateHook) for h in runner.hooks) == 1
    dumped = (tmp_path / 'work' / 'own_hook.py').read_text()
    assert "dict(interval=2, max_update_ratio=None, type='NonFiniteLossHook')" in dumped
    assert "dict(type='RNGStateHook')" in dumped


def test_update_ratio():
    before = [torch.ones(3), torch.zeros(4)]
    assert update_ratio(before, [torch.ones(3) * 1.1, torch.zeros(4)]) == pytest.approx(0.1)
    assert update_ratio(before, [torch.ones(3) * 1e30, torch.zeros(4)]) > 1e29
    assert math.isnan(update_ratio(before, [torch.full((3,), float('nan')), torch.zeros(4)]))
    with pytest.raises(ValueError, match='max_update_ratio'):
        NonFiniteLossHook(max_update_ratio=0)


@pytest.mark.parametrize('bounded', [True, False])
def test_lr_1e30_stops_at_the_first_step_and_saves_nothing(tmp_path, bounded):
    # lr=1e30: the first loss is finite (computed before the step) and the step sends the
    # weights to ~1e30, still finite. Saving that state as iter_1.pth would name a "good"
    # checkpoint whose next loss is inf. Without the update bound the parameters are finite,
    # so only the next loss would tell; the bound stops the run at the step itself.
    from mmengine.registry import HOOKS
    runner = toy_runner(tmp_path, max_iters=3, interval=1, lr=1e30)
    bound = {} if bounded else dict(max_update_ratio=None)  # default: 1.0
    runner.register_hook(HOOKS.build(dict(type='NonFiniteLossHook', **bound)))
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    if bounded:
        assert re.fullmatch(r'the optimizer step changed the parameters by \S+ times their norm '
                            r'\(NonFiniteLossHook max_update_ratio=1\) at iteration 1; training '
                            r'stopped before saving this state \(no checkpoint had been written '
                            r'yet\): lower the learning rate or check the inputs, then start '
                            r'again\.', str(info.value)), str(info.value)
        assert list(tmp_path.glob('*.pth')) == []
    else:  # the control: what the hook did before the bound (issue 13)
        assert str(info.value).startswith('loss_toy is inf at iteration 2; ')
        weights = load_checkpoint_file(str(tmp_path / 'iter_1.pth'))['state_dict']
        assert weights['linear.weight'].abs().max() > 1e20


def _all_finite(checkpoint):
    tensors = list(checkpoint['state_dict'].values()) + [
        t for state in checkpoint['optimizer']['state'].values() for t in state.values()
        if isinstance(t, torch.Tensor)]
    return all(bool(torch.isfinite(t.float()).all()) for t in tensors)


def test_named_checkpoint_after_a_divergent_step_resumes_and_trains_on(tiny_dsc_run, scenes,
                                                                       tmp_path):
    # Iteration 2 of the shared uninterrupted run, resumed with the learning rate jumping to
    # 1e30 at iteration 3 (configs/dsc-km_resnet18_tiny_spike.py): the run stops before saving
    # iteration 3 and names iter_2.pth, which resumes at the config's learning rate and trains
    # on exactly as the uninterrupted run did.
    reference = tiny_dsc_run.finished()
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    shutil.copy(reference / 'iter_2.pth', work_dir / 'iter_2.pth')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_2.pth'))
    data = f'train_dataloader.dataset.data_root={scenes}'
    train_main = load_tool('train').main
    message = exit_message(train_main, [SPIKE, '--work-dir', work_dir, '--resume',
                                        '--cfg-options', data])
    # The name comes from the resumed message hub: the run that wrote iter_2.pth.
    named = reference / 'iter_2.pth'
    assert message.startswith('error: the optimizer step changed the parameters by ') and \
        f'at iteration 3; training stopped before saving this state (the last good ' \
        f'checkpoint {named} was kept): resume from it with tools/train.py CONFIG --resume' \
        in message and '\n' not in message, message
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['iter_2.pth']
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_2.pth')
    # Enabled by default: the dumped config lists the hook.
    dumped = (work_dir / 'dsc-km_resnet18_tiny_spike.py').read_text()
    assert "type='NonFiniteLossHook'" in dumped

    # A process with one thread, as the reference run: bit-identical float sums.
    resumed = run_tool(['tools/train.py', TINY_DSC, '--work-dir', work_dir, '--resume',
                        '--cfg-options', data, 'train_cfg.max_iters=4'])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert 'resumed epoch: 0, iter: 2' in resumed.stdout + resumed.stderr
    final = load_checkpoint_file(str(work_dir / 'iter_4.pth'))
    expected = load_checkpoint_file(str(reference / 'iter_4.pth'))
    assert final['meta']['iter'] == 4 and _all_finite(final)
    # The config's cosine schedule (T_max 10) at iteration 4, not the spike.
    base_lr = Config.fromfile(str(REPO_ROOT / TINY_DSC)).optim_wrapper.optimizer.lr
    lrs = [group['lr'] for group in final['optimizer']['param_groups']]
    assert lrs == [group['lr'] for group in expected['optimizer']['param_groups']]
    assert lrs == pytest.approx([base_lr * (1 + math.cos(math.pi * 4 / TINY_DSC_ITERS)) / 2]
                                * len(lrs), rel=1e-9)
    for key, value in expected['state_dict'].items():
        assert torch.equal(final['state_dict'][key], value), key


def test_resume_restores_the_learning_rate_saved_in_the_checkpoint(tmp_path):
    # Why the message says "start again" for a lower learning rate: mmengine's resume loads the
    # optimizer's param_groups, so a lower lr in the config does not apply to a resumed run.
    toy_runner(tmp_path, max_iters=2, lr=0.05).train()
    resumed = toy_runner(tmp_path, max_iters=3, lr=0.001, resume=True)
    resumed.train()
    assert [g['lr'] for g in resumed.optim_wrapper.optimizer.param_groups] == [0.05]
