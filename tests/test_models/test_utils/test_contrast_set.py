"""bounded_pixel_pool at simulated world sizes: one process stands for one rank.

``all_gather``, ``get_rank`` and ``get_world_size`` as seen by ``pixel_pool`` are replaced by
functions over pre-built per-rank key pixels (what the collective would return there); the
real two-process (gloo) run is in tests/test_models/test_selfsup/test_dsc_dist.py.
"""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from dsc_mm.models.utils import bounded_pixel_pool, pixel_pool

BATCH, NUM_LOC, CHANNELS = 2, 9, 8
LOCAL = BATCH * NUM_LOC
SEED = 5


def _blocks(world, seed=0, latent=None):
    """Per-rank unit key pixels (L, C), optionally around ``latent`` class centres."""
    gen = torch.Generator().manual_seed(seed)
    if latent is None:
        return [F.normalize(torch.randn(LOCAL, CHANNELS, generator=gen), dim=1)
                for _ in range(world)]
    out = []
    for _ in range(world):
        classes = torch.randint(len(latent), (LOCAL, ), generator=gen)
        out.append(F.normalize(latent[classes] + 0.3 * torch.randn(LOCAL, latent.shape[1],
                                                                    generator=gen), dim=1))
    return out


def _simulate(monkeypatch, blocks, rank):
    """Make ``pixel_pool`` see ``len(blocks)`` ranks, this process being ``rank``."""
    world = len(blocks)

    def all_gather(tensor):
        if tensor.shape[0] == LOCAL:
            return [tensor if r == rank else blocks[r] for r in range(world)]
        picks = pixel_pool.sample_rows(world, LOCAL, tensor.shape[0], SEED, tensor.device)
        return [tensor if r == rank else blocks[r][picks[r]] for r in range(world)]

    monkeypatch.setattr(pixel_pool, 'all_gather', all_gather)
    monkeypatch.setattr(pixel_pool, 'get_rank', lambda: rank)
    monkeypatch.setattr(pixel_pool, 'get_world_size', lambda: world)


def _key_dense(block):
    return block.reshape(BATCH, NUM_LOC, CHANNELS).permute(0, 2, 1)  # (B, C, S*S)


MATCH = torch.randint(NUM_LOC, (BATCH, NUM_LOC), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize('cap', [None, 4 * LOCAL])
def test_at_or_under_the_cap_the_set_is_the_global_pool(monkeypatch, cap):
    blocks = _blocks(4)
    _simulate(monkeypatch, blocks, rank=1)
    contrast = bounded_pixel_pool(_key_dense(blocks[1]), MATCH, cap, seed=SEED)
    assert contrast.cluster_pixels is None
    assert torch.equal(contrast.pixels, torch.cat(blocks))
    local_rows = (torch.arange(BATCH)[:, None] * NUM_LOC + MATCH).reshape(-1)
    assert torch.equal(contrast.match_rows, LOCAL + local_rows)


def test_above_the_cap_every_rank_holds_its_own_pixels_and_one_shared_sample(monkeypatch):
    world, cap = 8, 3 * LOCAL  # pool of 144 pixels, cap 54: s = (54 - 18) // 7 = 5 per rank
    blocks = _blocks(world)
    samples = []
    for rank in range(world):
        _simulate(monkeypatch, blocks, rank)
        contrast = bounded_pixel_pool(_key_dense(blocks[rank]), MATCH, cap, seed=SEED)
        pixels = contrast.pixels
        assert pixels.shape == (LOCAL + (world - 1) * 5, CHANNELS) and pixels.shape[0] <= cap
        # The own pixels come first, in full, and every query's matched key pixel is among them.
        assert torch.equal(pixels[:LOCAL], blocks[rank])
        local_rows = (torch.arange(BATCH)[:, None] * NUM_LOC + MATCH).reshape(-1)
        assert torch.equal(pixels[contrast.match_rows], blocks[rank][local_rows])
        # The rest: 5 distinct pixels of each OTHER rank, none of this rank's.
        others = pixels[LOCAL:].reshape(world - 1, 5, CHANNELS)
        for slot, other in enumerate(r for r in range(world) if r != rank):
            hits = (others[slot][:, None] == blocks[other][None]).all(-1)  # (5, L)
            assert torch.equal(hits.sum(1), torch.ones(5, dtype=torch.long))
            assert hits.any(0).sum() == 5
        samples.append(contrast.cluster_pixels)
    assert all(torch.equal(s, samples[0]) for s in samples)  # one shared clustering sample
    assert samples[0].shape == (world * 5, CHANNELS)
    assert not torch.equal(pixel_pool.sample_rows(world, LOCAL, 5, SEED, 'cpu'),
                           pixel_pool.sample_rows(world, LOCAL, 5, SEED + 1, 'cpu'))


def _km_loss(monkeypatch, world, cap, query, latent):
    blocks = _blocks(world, seed=0, latent=latent)
    _simulate(monkeypatch, blocks, rank=0)
    contrast = bounded_pixel_pool(_key_dense(blocks[0]), MATCH, cap, seed=SEED)
    torch.manual_seed(0)
    head = MODELS.build(dict(type='KMeansSemanticHead', num_classes=4, feat_dim=CHANNELS,
                             num_iters=5))
    out = head.loss(query, contrast.pixels, contrast.match_rows, torch.tensor(0),
                    contrast.cluster_pixels)
    return out['loss'].item()


def test_km_loss_keeps_its_scale_when_the_world_grows(monkeypatch):
    """At 28 simulated ranks the bounded loss stays near the 4-rank loss (at the cap); the
    uncapped one grows by about log(28 / 4) = 1.95. With 72-pixel sets the sampling noise is
    about 0.2 (perf/semantic_scale.py measures the paper scale)."""
    latent = F.normalize(torch.randn(6, CHANNELS, generator=torch.Generator().manual_seed(2)),
                         dim=1)
    blocks = _blocks(1, seed=0, latent=latent)  # rank 0's block is the same at every W
    rows = (torch.arange(BATCH)[:, None] * NUM_LOC + MATCH).reshape(-1)
    noise = torch.randn(LOCAL, CHANNELS, generator=torch.Generator().manual_seed(3))
    query = F.normalize(blocks[0][rows] + 0.2 * noise, dim=1)
    cap = 4 * LOCAL  # at 28 ranks: 18 own + 27 x 2 sampled = 72 pixels, the 4-rank pool
    at_cap = _km_loss(monkeypatch, 4, cap, query, latent)
    bounded = _km_loss(monkeypatch, 28, cap, query, latent)
    uncapped = _km_loss(monkeypatch, 28, None, query, latent)
    assert abs(bounded - at_cap) < 0.3, (at_cap, bounded, uncapped)
    assert uncapped - at_cap > 1.5, (at_cap, uncapped)


def test_one_process_is_never_bounded():
    # A cap below this process's own pixels still returns its whole pool: there are no other
    # ranks to sample from.
    block = _blocks(1)[0]
    contrast = bounded_pixel_pool(_key_dense(block), MATCH, max_pixels=4, seed=SEED)
    assert contrast.cluster_pixels is None and torch.equal(contrast.pixels, block)


def test_the_cap_counts_pixels_not_channels(monkeypatch):
    # 2 ranks of 18 pixels with 8 channels and a cap of 20: 36 pixels exceed it (16 channel
    # "rows" would not), so the set is bounded: own 18 pixels + (20 - 18) // 1 = 2 others.
    blocks = _blocks(2)
    _simulate(monkeypatch, blocks, rank=0)
    contrast = bounded_pixel_pool(_key_dense(blocks[0]), MATCH, 20, seed=SEED)
    assert contrast.pixels.shape == (LOCAL + 2, CHANNELS)
    assert contrast.cluster_pixels.shape == (4, CHANNELS)


def test_rows_per_rank():
    assert pixel_pool.rows_per_rank(3, 10, 30) == 10
    assert pixel_pool.rows_per_rank(4, 100, 50) == 1  # own pixels alone reach the cap
