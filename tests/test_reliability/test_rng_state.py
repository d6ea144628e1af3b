"""RNGStateHook: generator states travel in checkpoints, so a resumed run repeats the original."""
import random

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook

from dsc_mm.engine.hooks import RNGStateHook, get_rng_state, set_rng_state
from dsc_mm.utils import load_checkpoint_file

from rel_helpers import toy_runner


def _weights(runner):
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def _interrupted(work_dir, hooks, total=6, stop=2, val=False):
    """Train ``stop`` iterations, then a fresh Runner resumes the work dir up to ``total``."""
    toy_runner(work_dir, max_iters=stop, hooks=hooks, val=val).train()
    resumed = toy_runner(work_dir, max_iters=total, hooks=hooks, resume=True, val=val)
    resumed.train()
    return resumed


@pytest.mark.parametrize('val', [False, True])
def test_resumed_toy_run_equals_uninterrupted_run(tmp_path, val):
    full = toy_runner(tmp_path / 'full', max_iters=6, hooks=['RNGStateHook'], val=val)
    full.train()
    resumed = _interrupted(tmp_path / 'resumed', ['RNGStateHook'], val=val)
    assert resumed.iter == full.iter == 6
    for key, value in _weights(full).items():
        assert torch.equal(_weights(resumed)[key], value), key
    # The checkpoint carries one state per process, loadable with weights_only=True.
    states = load_checkpoint_file(str(tmp_path / 'resumed' / 'iter_2.pth'))['meta']['rng_states']
    assert len(states) == 1 and set(states[0]) >= {'torch', 'numpy', 'random'}


def test_without_the_hook_the_resumed_run_diverges(tmp_path):
    # The control: mmengine re-seeds on resume, and the model's draws of the first two
    # iterations are missing from the torch stream, so the weights differ.
    full = toy_runner(tmp_path / 'full', max_iters=6)
    full.train()
    resumed = _interrupted(tmp_path / 'resumed', hooks=[])
    assert not torch.equal(_weights(resumed)['linear.weight'], _weights(full)['linear.weight'])


class _ValRecorder(Hook):
    """Records each validation's metrics (proof that validation ran, and when)."""

    def __init__(self):
        self.runs = []

    def after_val_epoch(self, runner, metrics=None):
        self.runs.append((runner.iter, dict(metrics)))


@pytest.mark.parametrize('hooked', [True, False])
def test_validation_does_not_shift_the_training_stream(tmp_path, hooked):
    # Validation draws from the generators (the sampler's seed, the model's noise); the hook
    # makes it neutral, so training with and without validation sees the same batches and
    # noise. The control without the hook shows that the validation at iteration 2 does shift
    # iterations 3 and 4.
    hooks = ['RNGStateHook'] if hooked else []
    with_val = toy_runner(tmp_path / 'val', max_iters=4, hooks=hooks, val=True)
    recorder = _ValRecorder()
    with_val.register_hook(recorder)
    with_val.train()
    assert recorder.runs == [(2, {'samples': 8.0}), (4, {'samples': 8.0})]
    without = toy_runner(tmp_path / 'noval', max_iters=4, hooks=hooks)
    without.train()
    same = torch.equal(_weights(with_val)['linear.weight'], _weights(without)['linear.weight'])
    assert same is hooked


def test_load_from_does_not_restore_generators(tmp_path):
    # Fine-tuning from a checkpoint (load_from, no resume) must start the generators from the
    # seed. Two runs load the same weights, one from a checkpoint with the generator states
    # of iteration 2 and one from a copy without them; they train and must end identical
    # (the model draws from torch's generator and the data from numpy's at every step).
    toy_runner(tmp_path / 'a', max_iters=2, hooks=['RNGStateHook']).train()
    with_states = tmp_path / 'a' / 'iter_2.pth'
    checkpoint = load_checkpoint_file(str(with_states))
    assert checkpoint['meta'].pop('rng_states')
    without_states = tmp_path / 'stripped.pth'
    torch.save(checkpoint, without_states)
    weights = {}
    for name, source in (('with', with_states), ('without', without_states)):
        runner = toy_runner(tmp_path / name, max_iters=3, hooks=['RNGStateHook'])
        runner._load_from = str(source)
        runner.train()
        weights[name] = _weights(runner)['linear.weight']
    assert torch.equal(weights['with'], weights['without'])


def test_get_set_round_trip():
    state = get_rng_state()
    drawn = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(drawn[0], again[0])
    assert np.array_equal(drawn[1], again[1]) and drawn[2] == again[2]
