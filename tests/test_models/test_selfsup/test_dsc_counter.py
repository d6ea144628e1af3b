"""DSC's step counter and the schedules read from it, exactly, without a forward pass.

The counter ``iter_count`` (a buffer) and its host copy drive every schedule: the pixel
term's warm-up, beta's ramp and whether the semantic term is computed at all. These tests pin
the values at and around each boundary and the rescaling of a resumed counter.
"""
import re

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

PM = dict(type='PrototypeSemanticHead', num_classes=4, feat_dim=16)


def test_host_copy_reads_the_buffer_once_and_follows_every_step(tiny):
    model = MODELS.build(tiny.dsc())
    model.advance_iter()  # before any read: only the buffer moves
    assert model.iter_count.item() == 1 and model._host_iter is None
    assert model.host_iter() == 1
    model.iter_count.fill_(7)  # behind the model's back: the host copy is not re-read
    assert model.host_iter() == 1
    model.advance_iter()
    model.advance_iter()
    assert model.iter_count.item() == 9 and model.host_iter() == 3
    model.set_iter(5)
    assert model.iter_count.item() == 5 and model.host_iter() == 5


def test_loading_a_state_dict_makes_the_host_copy_read_the_loaded_counter(tiny):
    model = MODELS.build(tiny.dsc())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state['iter_count'].fill_(2)
    model.set_iter(5)
    model.load_state_dict(state)
    assert model.host_iter() == 2


def test_loss_weights_at_and_around_every_boundary(tiny):
    model = MODELS.build(tiny.dsc(instance_weight=0.25, pixel_weight=0.75, semantic_weight=2.,
                                  dense_start_iters=3, semantic_ramp=(2, 6)))
    # it: (w_inst, w_pix, beta); before the warm-up ends the instance term takes w_pix too.
    expected = {0: (1., 0., 0.), 2: (1., 0., 0.), 3: (.25, .75, .5), 4: (.25, .75, 1.),
                5: (.25, .75, 1.5), 6: (.25, .75, 2.), 9: (.25, .75, 2.)}
    for it, weights in expected.items():
        model.set_iter(it)
        got = model.loss_weights()
        assert all(w.dtype == torch.float32 and w.shape == () for w in got)
        assert tuple(w.item() for w in got) == weights, it


@pytest.mark.parametrize('ramp, first_on', [((2, 6), 3), ((3, 3), 3), ((0, 0), 0)])
def test_semantic_on_is_the_host_twin_of_beta(tiny, ramp, first_on):
    model = MODELS.build(tiny.dsc(semantic_weight=0.5, semantic_ramp=ramp))
    for it in range(8):
        model.set_iter(it)
        beta = model.loss_weights()[2].item()
        assert model.semantic_on(it) == (beta > 0) == (it >= first_on), it
    # beta = 0: never on, whatever the ramp (no head call, no clustering).
    off = MODELS.build(tiny.dsc(semantic_weight=0., semantic_ramp=ramp))
    assert not any(off.semantic_on(it) for it in range(8))


def test_resolving_turns_epochs_into_rounded_steps(tiny):
    model = MODELS.build(tiny.dsc(dense_start_epochs=1.5, semantic_ramp_epochs=(0.5, 1.5),
                                  semantic_head=dict(PM, freeze_prototypes_epochs=1.3)))
    model.resolve_schedules(2.5)
    # 3.75 -> 4, (1.25, 3.75) -> (1, 4), 3.25 -> 3: rounded, not truncated.
    assert model.dense_start_iters == 4 and model.semantic_ramp == (1, 4)
    assert model.semantic_head.freeze_prototypes_iters == 3
    assert model.steps_per_epoch.item() == 2.5 and model.schedules_resolved
    # Schedules given in steps are left as they are.
    steps = MODELS.build(tiny.dsc(dense_start_iters=7, semantic_ramp=(1, 2)))
    steps.resolve_schedules(2.5)
    assert (steps.dense_start_iters, steps.semantic_ramp) == (7, (1, 2))


def test_a_counter_of_another_run_is_rescaled_to_the_same_epochs(tiny):
    model = MODELS.build(tiny.dsc())
    model.set_iter(3)
    model.resolve_schedules(4)  # a fresh run: nothing to rescale
    assert model.host_iter() == 3 and model.iter_count.item() == 3
    model.resolve_schedules(4)  # the same steps per epoch: unchanged
    assert model.host_iter() == 3
    model.resolve_schedules(5)  # 3 steps of 4 per epoch = 3.75 steps of 5 -> 4
    assert model.host_iter() == 4 and model.iter_count.item() == 4
    assert model.steps_per_epoch.item() == 5
    model.resolve_schedules(1)  # 4 of 5 -> 0.8 of 1 -> 1
    model.set_iter(2)
    model.resolve_schedules(3)  # from 1 step per epoch: 2 -> 6
    assert model.host_iter() == 6


def test_an_unresolved_epoch_schedule_stops_the_first_step(tiny):
    model = MODELS.build(tiny.dsc(semantic_ramp_epochs=(0, 1)))
    message = ('DSC schedules are given in epochs but were never turned into iterations; add '
               "dict(type='DSCScheduleHook') to custom_hooks in the config (the DSC configs "
               'have it) or call model.resolve_schedules(steps_per_epoch) first.')
    with pytest.raises(RuntimeError, match='^' + re.escape(message) + '$'):
        model.loss([torch.randn(2, 3, 64, 64) for _ in range(2)], None)
    assert model.iter_count.item() == 0


def test_accumulation_is_refused_before_any_work(tiny):
    model = MODELS.build(tiny.dsc())
    message = ('DSC does not support gradient accumulation (optim_wrapper.accumulative_counts'
               '=2): its EMA key encoder, queues and schedules advance once per loss() call; '
               'remove accumulative_counts and reach the total batch with more processes or a '
               'larger per-process batch.')
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
    data = dict(inputs=[torch.randn(2, 3, 64, 64) for _ in range(2)],
                data_samples=[DataSample(), DataSample()])
    with pytest.raises(ValueError, match='^' + re.escape(message) + '$'):
        model.train_step(data, wrapper)
    assert model.iter_count.item() == 0 and model.encoder_k.steps.item() == 0
    # One accumulation step, or a wrapper without the attribute, is fine.
    model.refuse_accumulation(object())
    model.train_step(data, OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    assert model.iter_count.item() == 1
