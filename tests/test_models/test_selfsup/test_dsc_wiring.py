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
    """Backbone + DenseCLNeck by hand, all unit vectors: c5 and dense maps (B, D, S*S), the
    global embedding and the pooled dense vector (B, C)."""
    with torch.no_grad():
        feat = backbone(img)
        global_emb, dense, pooled = neck(feat)
    return dict(c5=F.normalize(feat[0].flatten(2), dim=1), dense=F.normalize(dense, dim=1),
                global_emb=F.normalize(global_emb, dim=1), pooled=F.normalize(pooled, dim=1))


def _step(tiny, semantic_head, it=0, before=None, **overrides):
    """One float64 eval-mode step; ``before(model, key_dense)`` may set the heads up first."""
    torch.manual_seed(0)
    model = MODELS.build(tiny.dsc(
        pixel_head=dict(type='PixelNeighbourHead', cross_view_topk=CROSS, same_view_topk=SAME),
        semantic_head=semantic_head, **overrides)).double().eval()
    views = [torch.randn(2, 3, 96, 96, dtype=torch.float64) for _ in range(2)]
    model.set_iter(it)
    queues = dict(instance=model.instance_queue.queue.clone(),
                  pixel=model.pixel_queue.queue.clone())
    if before is not None:
        # The key encoder starts as a copy of the query encoder and the step's EMA update
        # copies the same weights again, so these are the step's key pixels.
        before(model, _encode(*model.encoder_k.module, views[1])['dense'])
    forwards = []
    model.encoder_k.module[0].register_forward_hook(lambda *args: forwards.append(1))
    spies = dict(find=Spy(model.pixel_head, 'find_neighbours'),
                 pixel=Spy(model.pixel_head, 'loss'),
                 semantic=Spy(model.semantic_head, 'loss'))
    losses = model.loss(views, None)
    num_forwards = len(forwards)  # before the re-encoding below adds its own
    q = _encode(model.backbone, model.neck, views[0])
    k = _encode(*model.encoder_k.module, views[1])
    k1 = _encode(*model.encoder_k.module, views[0])
    return dict(model=model, losses=losses, spies=spies, forwards=num_forwards,
                pixel_queue=queues['pixel'], instance_queue=queues['instance'],
                q_c5=q['c5'], q_dense=q['dense'], q_global=q['global_emb'],
                k_c5=k['c5'], k_dense=k['dense'], k_global=k['global_emb'],
                k_pooled=k['pooled'], k1_c5=k1['c5'], k1_dense=k1['dense'])


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


def _query_rows_and_matches(s):
    """Query pixels as rows (b*S*S + i) and the pool row of each one's top-1 cross-view match,
    found by hand."""
    queries = s['q_dense'].permute(0, 2, 1).reshape(-1, s['q_dense'].shape[1])
    pool = s['k_dense'].permute(0, 2, 1).reshape(-1, s['k_dense'].shape[1])
    top1 = (s['q_c5'].transpose(1, 2) @ s['k_c5']).argmax(dim=2)  # (B, S*S)
    return queries, pool, (top1 + NUM_LOC * torch.arange(2)[:, None]).reshape(-1)


def test_instance_term_is_moco_info_nce_over_the_instance_queue(km_step):
    s = km_step
    q, k, queue = s['q_global'], s['k_global'], s['instance_queue']
    pos = (q * k).sum(1) / 0.2
    expected = (torch.logsumexp(torch.cat([pos[:, None], q @ queue / 0.2], 1), 1) - pos).mean()
    torch.testing.assert_close(s['losses']['raw_instance'], expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(s['losses']['loss_instance'], 0.5 * expected, rtol=0, atol=1e-10)


def test_the_step_enqueues_its_keys_and_counts_itself(km_step):
    s = km_step
    model, losses = s['model'], s['losses']
    # This step's keys fill the first two slots of each queue; the rest is untouched.
    torch.testing.assert_close(model.instance_queue.queue[:, :2], s['k_global'].t(), rtol=0,
                               atol=1e-12)
    torch.testing.assert_close(model.pixel_queue.queue[:, :2], s['k_pooled'].t(), rtol=0,
                               atol=1e-12)
    assert torch.equal(model.instance_queue.queue[:, 2:], s['instance_queue'][:, 2:])
    assert torch.equal(model.pixel_queue.queue[:, 2:], s['pixel_queue'][:, 2:])
    assert model.instance_queue.ptr.item() == model.pixel_queue.ptr.item() == 2
    assert model.iter_count.item() == 1 and model.host_iter() == 1
    # mmengine sums and back-propagates the loss_* entries and only logs the others.
    assert set(losses) == {'loss_instance', 'loss_pixel', 'loss_semantic', 'raw_instance',
                           'raw_pixel', 'raw_semantic', 'cluster_nonempty', 'cluster_entropy'}
    for name, value in losses.items():
        assert value.requires_grad == name.startswith('loss'), name


def _lloyd_by_hand(pool, centroids, num_iters):
    """Spherical k-means from given centroids; fails if a cluster empties (no re-seeding)."""
    for _ in range(num_iters):
        labels = (pool @ centroids.t()).argmax(dim=1)
        assert (torch.bincount(labels, minlength=len(centroids)) > 0).all()
        centroids = F.normalize(torch.zeros_like(centroids).index_add_(0, labels, pool), dim=1)
    return labels, centroids


def test_dsc_km_loss_value_against_k_means_and_supervised_contrast_by_hand(tiny):
    """Issue 20: DSC-KM's semantic term with the paper's four cross-view neighbours, from the
    re-encoded views (k-means warm-started from four key pixels, 3 Lloyd steps)."""
    seeds = [0, 5, 10, 15]

    def warm_start(model, key_dense):
        pool = key_dense.permute(0, 2, 1).reshape(-1, key_dense.shape[1])
        model.semantic_head.centroids.copy_(pool[seeds])
        model.semantic_head.initialized.fill_(True)

    s = _step(tiny, KM, before=warm_start)
    queries, pool, match = _query_rows_and_matches(s)
    labels, centroids = _lloyd_by_hand(pool, pool[seeds], num_iters=3)
    log_prob = F.log_softmax(queries @ pool.t() / 0.2, dim=1)
    positive = labels[match][:, None] == labels[None, :]
    expected = (-(log_prob * positive).sum(1) / positive.sum(1)).mean()
    losses = s['losses']
    # k-means runs in float32 (the labels are exact), the contrast in the model's float64.
    torch.testing.assert_close(losses['raw_semantic'], expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(losses['loss_semantic'], 0.5 * expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(s['model'].semantic_head.centroids, centroids, rtol=0,
                               atol=1e-6)
    sizes = torch.bincount((pool @ centroids.t()).argmax(1), minlength=4)
    assert losses['cluster_nonempty'].item() == (sizes > 0).sum().item()


def test_dsc_pm_loss_value_against_swav_sinkhorn_and_swapped_prediction_by_hand(tiny):
    """Issue 20: DSC-PM's semantic term with the paper's four cross-view neighbours; the codes
    from mmpretrain's SwAV Sinkhorn (exp domain), not the head's log-domain one."""
    from mmpretrain.models.losses.swav_loss import distributed_sinkhorn
    prototypes = torch.randn(4, 16, generator=torch.Generator().manual_seed(1),
                             dtype=torch.float64) * 2  # not unit: the head renormalises them

    def set_prototypes(model, key_dense):
        with torch.no_grad():
            model.semantic_head.prototypes.copy_(prototypes)

    s = _step(tiny, PM, before=set_prototypes)
    queries, pool, match = _query_rows_and_matches(s)
    unit = F.normalize(prototypes, dim=1)
    codes = distributed_sinkhorn(pool @ unit.t(), 3, 1, 0.05)  # (N, K), eps 0.05, 3 rounds
    log_prob = F.log_softmax(queries @ unit.t() / 0.1, dim=1)
    expected = -(codes[match] * log_prob).sum(1).mean()
    losses = s['losses']
    # The codes are computed in float32 (a few 1e-7 apart from the float64 reference).
    torch.testing.assert_close(losses['raw_semantic'], expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(losses['loss_semantic'], 0.5 * expected, rtol=0, atol=1e-5)
    assert losses['cluster_nonempty'].item() == codes.argmax(1).unique().numel()


def test_the_contrast_set_gets_the_cap_the_step_seed_and_the_top1_matches(tiny, monkeypatch):
    """Above the cap (several processes) the pool is a seeded sample: the model must pass its
    cap, the step as seed, and hand the clustering sample on to the head."""
    from dsc_mm.models.selfsup import dsc as dsc_module
    calls = []
    real = dsc_module.bounded_pixel_pool

    def recording_pool(key_dense, match, max_pixels, seed):
        contrast = real(key_dense, match, max_pixels, seed=seed)
        # One process is never bounded; stand in a clustering sample as several would give.
        contrast = contrast._replace(cluster_pixels=contrast.pixels[::2].clone())
        calls.append((key_dense.clone(), match.clone(), max_pixels, seed, contrast))
        return contrast

    monkeypatch.setattr(dsc_module, 'bounded_pixel_pool', recording_pool)
    s = _step(tiny, dict(KM, min_pixels_per_class=1), it=7, max_contrast_pixels=500)
    (key_dense, match, max_pixels, seed, contrast), = calls
    torch.testing.assert_close(key_dense, s['k_dense'], rtol=0, atol=1e-12)
    top1 = (s['q_c5'].transpose(1, 2) @ s['k_c5']).argmax(dim=2)
    assert torch.equal(match, top1) and (max_pixels, seed) == (500, 7)
    (args, _, _), = s['spies']['semantic'].calls
    assert torch.equal(args[1], contrast.pixels) and torch.equal(args[4], contrast.cluster_pixels)
    assert args[3].item() == 7


def test_a_term_whose_weight_is_zero_is_not_computed(tiny):
    """MoCo v2 as DSC (w_pix = beta = 0): no neighbours, no pixel loss, no such entries."""
    model = MODELS.build(tiny.dsc(instance_weight=1., pixel_weight=0., semantic_weight=0.))
    spies = [Spy(model.pixel_head, 'find_neighbours'), Spy(model.pixel_head, 'loss'),
             Spy(model.semantic_head, 'loss')]
    losses = model.loss([torch.randn(2, 3, 64, 64) for _ in range(2)], None)
    assert set(losses) == {'loss_instance', 'raw_instance'}
    assert not any(spy.calls for spy in spies)
