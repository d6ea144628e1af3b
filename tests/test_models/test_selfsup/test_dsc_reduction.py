"""Correctness anchor: DSC reduces to mmpretrain's own DenseCL and MoCo v2.

Same weights, same inputs, same queues, same RNG state (the shuffle-BN permutation): the total
loss and every gradient must agree to 1e-6, over two steps (so the EMA update and the enqueue
of step 1 are checked by step 2). The models run in float64: in float32 the two
implementations differ by rounding order alone (measured up to 1.6e-6 on conv1's gradient at
step 2), while any real difference (a wrong neighbour, weight or queue) is >= 1e-3.
"""
import torch
from mmpretrain.registry import MODELS


TOL = 1e-6


def _reference(tiny, type_, neck, **kwargs):
    return MODELS.build(dict(type=type_, queue_len=tiny.queue_len, feat_dim=tiny.feat_dim,
                             momentum=0.001, backbone=tiny.backbone, neck=neck, head=tiny.head,
                             **kwargs))


def _load_reference_weights(dsc, ref):
    """Copy encoder, EMA encoder and queues of a mmpretrain model into DSC."""
    renames = {'queue': 'instance_queue.queue', 'queue_ptr': 'instance_queue.ptr',
               'queue2': 'pixel_queue.queue', 'queue2_ptr': 'pixel_queue.ptr'}
    state = {renames.get(k, k): v for k, v in ref.state_dict().items()}
    missing, unexpected = dsc.load_state_dict(state, strict=False)
    assert not unexpected
    # Only DSC's own additions may be missing (the MoCo neck has no dense branch).
    assert all(k.startswith(('semantic_head.', 'iter_count', 'steps_per_epoch', 'neck.mlp2',
                             'encoder_k.module.1.mlp2', 'pixel_queue')) for k in missing), missing


def _step(model, inputs, seed):
    """One loss + backward with a fixed RNG state; returns (total loss, grads by name)."""
    model.zero_grad()
    torch.manual_seed(seed)
    losses = model.loss([x.clone() for x in inputs], None)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return total.detach(), grads


def _sgd(model, lr=0.5):
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= lr * p.grad


def _assert_same_steps(dsc, ref, num_steps=2):
    dsc.double(), ref.double()
    torch.manual_seed(123)
    batches = [[torch.randn(4, 3, 64, 64, dtype=torch.float64) for _ in range(2)]
               for _ in range(num_steps)]
    for step, inputs in enumerate(batches):
        loss_dsc, grads_dsc = _step(dsc, inputs, seed=step)
        loss_ref, grads_ref = _step(ref, inputs, seed=step)
        assert abs(loss_dsc - loss_ref) <= TOL, (step, loss_dsc, loss_ref)
        assert grads_ref.keys() <= grads_dsc.keys()
        for name, grad in grads_ref.items():
            diff = (grads_dsc[name] - grad).abs().max().item()
            assert diff <= TOL, (step, name, diff)
        # Parameters outside the reference (e.g. the unused dense branch) get no gradient.
        for name in grads_dsc.keys() - grads_ref.keys():
            assert grads_dsc[name].abs().max() == 0, name
        _sgd(dsc)
        _sgd(ref)
    # Step 2's keys come from weights updated with (equal up to rounding) gradients.
    assert (dsc.instance_queue.queue - ref.queue).abs().max() <= TOL
    assert torch.equal(dsc.instance_queue.ptr, ref.queue_ptr)


def test_dsc_equals_densecl(tiny):
    torch.manual_seed(0)
    ref = _reference(tiny, 'DenseCL', tiny.neck, loss_lambda=0.5)
    dsc = MODELS.build(tiny.dsc(semantic_weight=0.))
    _load_reference_weights(dsc, ref)
    ref.train(), dsc.train()
    _assert_same_steps(dsc, ref)
    assert (dsc.pixel_queue.queue - ref.queue2).abs().max() <= TOL
    assert torch.equal(dsc.pixel_queue.ptr, ref.queue2_ptr)


def test_dsc_warmup_equals_densecl_hook(tiny):
    """Before dense_start_iters DSC is DenseCL as set by DenseCLHook (loss_lambda = 0)."""
    torch.manual_seed(0)
    ref = _reference(tiny, 'DenseCL', tiny.neck, loss_lambda=0.)
    dsc = MODELS.build(tiny.dsc(semantic_weight=0., dense_start_iters=10))
    _load_reference_weights(dsc, ref)
    _assert_same_steps(dsc, ref)
    w_inst, w_pix, _ = dsc.loss_weights()
    assert (w_inst.item(), w_pix.item()) == (1.0, 0.0)
    dsc.iter_count.fill_(10)
    w_inst, w_pix, _ = dsc.loss_weights()
    assert (w_inst.item(), w_pix.item()) == (0.5, 0.5)


def test_dsc_equals_mocov2(tiny):
    torch.manual_seed(0)
    ref = _reference(tiny, 'MoCo', dict(type='MoCoV2Neck', in_channels=tiny.c5_channels,
                                        hid_channels=32, out_channels=tiny.feat_dim))
    dsc = MODELS.build(tiny.dsc(instance_weight=1., pixel_weight=0., semantic_weight=0.))
    _load_reference_weights(dsc, ref)
    _assert_same_steps(dsc, ref)
