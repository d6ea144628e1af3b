"""What DSC.loss feeds its heads and how it adds their terms, recomputed outside the model.

One float64 step of a tiny DSC with the paper's four cross-view neighbours (and two same-view
ones); the encoders are then run again by hand on the same views, the neighbours found with
plain top-k, and every head input and weighted term compared with the model's. The model runs
in eval mode so that BN uses its running statistics and the re-encoding is exact.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

NUM_LOC = 9  # 96 px crops: a 3 x 3 C5 map
CROSS, SAME = 4, 2  # k_x = 4 as in the paper's configs; k_s = 2


class Spy:
    """Wraps a bound method, recording its arguments and result on every call."""

    def __init__(self, obj, name):
        self.calls, self._fn = [], getattr(obj, name)
        setattr(obj, name, self)

    def __call__(self, *args, **kwargs):
        # Clones: the model advances its iteration counter in place after the call.
        seen = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
        result = self._fn(*args, **kwargs)
        # A copy of a dict result: the model pops the semantic head's 'loss' out of it.
        self.calls.append((seen, kwargs, dict(result) if isinstance(result, dict) else result))
        return result


def _encode(backbone, neck, img):
    """Backbone + DenseCLNeck by hand: unit (c5, dense) maps, each (B, D, S*S)."""
    feat = backbone(img)
    _, dense, _ = neck(feat)
    return F.normalize(feat[0].flatten(2), dim=1), F.normalize(dense, dim=1)


def _step(tiny, semantic_head, it=0, **overrides):
    torch.manual_seed(0)
    model = MODELS.build(tiny.dsc(
        pixel_head=dict(type='PixelNeighbourHead', cross_view_topk=CROSS, same_view_topk=SAME),
        semantic_head=semantic_head, **overrides)).double().eval()
    views = [torch.randn(2, 3, 96, 96, dtype=torch.float64) for _ in range(2)]
    model.set_iter(it)
    pixel_queue = model.pixel_queue.queue.clone()
    forwards = []
    model.encoder_k.module[0].register_forward_hook(lambda *args: forwards.append(1))
    spies = dict(find=Spy(model.pixel_head, 'find_neighbours'),
                 pixel=Spy(model.pixel_head, 'loss'),
                 semantic=Spy(model.semantic_head, 'loss'))
    losses = model.loss(views, None)
    num_forwards = len(forwards)  # before the re-encoding below adds its own
    with torch.no_grad():
        q_c5, q_dense = _encode(model.backbone, model.neck, views[0])
        k_c5, k_dense = _encode(*model.encoder_k.module, views[1])
        k1_c5, k1_dense = _encode(*model.encoder_k.module, views[0])
    return dict(model=model, losses=losses, spies=spies, forwards=num_forwards,
                pixel_queue=pixel_queue, q_c5=q_c5, q_dense=q_dense,
                k_c5=k_c5, k_dense=k_dense, k1_c5=k1_c5, k1_dense=k1_dense)


def test_same_view_off_skips_the_view1_key_forward(tiny):
    model = MODELS.build(tiny.dsc())  # k_x = 1, k_s = 0
    forwards = []
    model.encoder_k.module[0].register_forward_hook(lambda *args: forwards.append(1))
    find, pixel = Spy(model.pixel_head, 'find_neighbours'), Spy(model.pixel_head, 'loss')
    model.loss([torch.randn(2, 3, 64, 64) for _ in range(2)], None)
    assert len(forwards) == 1
    (find_args, _, (_, same)), = find.calls
    assert find_args[2] is None and same is None
    (pixel_args, _, _), = pixel.calls
    assert pixel_args[4] is None and pixel_args[5] is None


KM = dict(type='KMeansSemanticHead', num_classes=4, feat_dim=16, num_iters=3)
PM = dict(type='PrototypeSemanticHead', num_classes=4, feat_dim=16)


@pytest.fixture(scope='module')
def km_step(tiny):
    return _step(tiny, KM)


def test_four_cross_view_and_two_same_view_neighbours_feed_the_pixel_term(km_step):
    s = km_step
    # Cross-view: the 4 locations of view 2 with the most similar C5 vector; same-view: the 2
    # most similar OTHER locations of the key encoder's view 1 (one more key forward).
    cross = (s['q_c5'].transpose(1, 2) @ s['k_c5']).topk(CROSS, dim=2).indices
    sim1 = s['k1_c5'].transpose(1, 2) @ s['k1_c5']
    same = sim1.masked_fill(torch.eye(NUM_LOC, dtype=torch.bool), -math.inf).topk(SAME, 2).indices
    assert s['forwards'] == 2
    (find_args, _, (got_cross, got_same)), = s['spies']['find'].calls
    torch.testing.assert_close(find_args[2], s['k1_c5'], rtol=0, atol=1e-10)
    assert torch.equal(got_cross, cross) and torch.equal(got_same, same)
    assert got_cross.shape == (2, NUM_LOC, CROSS)
    # The unweighted pixel term: for each query location, the mean over its 6 positives of
    # -log exp(r.t_p/T) / (exp(r.t_p/T) + sum_n exp(r.n/T)), negatives from the pixel queue.
    q, k, k1, queue = s['q_dense'], s['k_dense'], s['k1_dense'], s['pixel_queue']
    terms = []
    for b in range(2):
        for i in range(NUM_LOC):
            neg = torch.logsumexp(q[b, :, i] @ queue / 0.2, dim=0)
            positives = [k[b, :, j] for j in cross[b, i]] + [k1[b, :, j] for j in same[b, i]]
            for t in positives:
                pos = q[b, :, i] @ t / 0.2
                terms.append(torch.logaddexp(pos, neg) - pos)
    expected = torch.stack(terms).mean()
    torch.testing.assert_close(km_step['losses']['raw_pixel'], expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(km_step['losses']['loss_pixel'], 0.5 * expected, rtol=0,
                               atol=1e-9)


def test_semantic_head_gets_the_global_key_pixels_and_each_querys_top1_match(km_step):
    s = km_step
    (args, _, out), = s['spies']['semantic'].calls
    queries, pool, match_rows, cur_iter, cluster_pool = args
    # Query pixel (b, i) is row b*S*S + i; the pool is every key pixel of the batch in the
    # same order; a query's match is its top-1 cross-view neighbour in its own image.
    torch.testing.assert_close(queries, s['q_dense'].permute(0, 2, 1).reshape(-1, 16),
                               rtol=0, atol=1e-10)
    torch.testing.assert_close(pool, s['k_dense'].permute(0, 2, 1).reshape(-1, 16),
                               rtol=0, atol=1e-10)
    top1 = (s['q_c5'].transpose(1, 2) @ s['k_c5']).argmax(dim=2)  # (B, S*S)
    assert torch.equal(match_rows, (top1 + NUM_LOC * torch.arange(2)[:, None]).reshape(-1))
    assert cur_iter.item() == 0 and cluster_pool is None


@pytest.mark.parametrize('head_cfg', [KM, PM])
@pytest.mark.parametrize('ramp, it, weight', [((0, 0), 0, 0.5), ((0, 4), 0, 0.0),
                                              ((0, 4), 1, 0.125), ((0, 4), 6, 0.5)])
def test_semantic_term_is_the_heads_loss_times_the_ramped_beta(tiny, head_cfg, ramp, it,
                                                              weight):
    s = _step(tiny, head_cfg, it=it, semantic_weight=0.5, semantic_ramp=ramp)
    losses = s['losses']
    if weight == 0:
        # beta(0) = 0 at the ramp's start: the term and its head call are skipped entirely.
        assert not s['spies']['semantic'].calls
        assert not {'loss_semantic', 'raw_semantic', 'cluster_nonempty'} & set(losses)
        return
    (_, _, out), = s['spies']['semantic'].calls
    assert losses['raw_semantic'] == out['loss']
    assert losses['loss_semantic'].item() == pytest.approx(weight * out['loss'].item(), rel=1e-12)
    assert losses['cluster_nonempty'] == out['cluster_nonempty']
    assert losses['cluster_entropy'] == out['cluster_entropy']
    # The other terms are untouched by the semantic term: the same model with beta = 0.
    assert s['spies']['semantic'].calls[0][0][3].item() == it  # the schedules' counter
    plain = _step(tiny, head_cfg, it=it, semantic_weight=0.)['losses']
    for name in ('loss_instance', 'loss_pixel'):
        assert losses[name].item() == pytest.approx(plain[name].item(), rel=1e-12)
    # mmengine sums every loss_* entry: the total gains exactly beta * L_semantic.
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    plain_total = sum(v for k, v in plain.items() if k.startswith('loss'))
    assert (total - plain_total).item() == pytest.approx(weight * out['loss'].item(), rel=1e-9)
