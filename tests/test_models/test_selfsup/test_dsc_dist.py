"""Two CPU processes (gloo): the global pool, k-means labels and queues see the GLOBAL batch;
above the cap, the bounded contrast set shares one sample across ranks."""
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

WORLD = 2
BATCH = 2  # per process
NUM_LOC = 9
CHANNELS = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _local_keys(rank):
    gen = torch.Generator().manual_seed(100 + rank)
    key_dense = F.normalize(torch.randn(BATCH, CHANNELS, NUM_LOC, generator=gen), dim=1)
    match = torch.randint(0, NUM_LOC, (BATCH, NUM_LOC), generator=gen)
    return key_dense, match


def _worker(rank, port, out_dir, dsc_cfg):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import dsc_mm.models  # noqa: F401
    from dsc_mm.models.utils import FeatureQueue, bounded_pixel_pool, global_pixel_pool
    init_default_scope('mmpretrain')
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=WORLD)
    result = {}
    # 1. The pool and the k-means labels.
    key_dense, match = _local_keys(rank)
    pool, rows = global_pixel_pool(key_dense, match)
    head = MODELS.build(dict(type='KMeansSemanticHead', num_classes=4, feat_dim=CHANNELS))
    torch.manual_seed(0)
    result.update(pool=pool, rows=rows, labels=head.cluster(pool), centroids=head.centroids)
    # 1b. Above the cap (2 x 18 pixels > 20): own 18 pixels + 2 of the other rank; the
    # clustering sample is 10 pixels of each rank.
    contrast = bounded_pixel_pool(key_dense, match, max_pixels=BATCH * NUM_LOC + 2, seed=3)
    result.update(bounded=contrast.pixels, bounded_rows=contrast.match_rows,
                  sample=contrast.cluster_pixels)
    # 2. A queue fed with rank-specific keys.
    queue = FeatureQueue(CHANNELS, 16)
    queue.enqueue(torch.full((BATCH, CHANNELS), float(rank + 1)))
    result.update(queue=queue.queue.clone(), queue_ptr=queue.ptr.clone())
    # 3. A whole DSC step (shuffle-BN, all-gathers, enqueue) with per-rank images.
    torch.manual_seed(0)  # same initial weights on both ranks, as DDP would broadcast
    model = MODELS.build(dsc_cfg)
    torch.manual_seed(rank)
    images = [torch.randn(BATCH, 3, 64, 64) for _ in range(2)]
    losses = model.loss(images, None)
    result.update(loss=sum(v for k, v in losses.items() if 'loss' in k).detach(),
                  instance_ptr=model.instance_queue.ptr, pixel_ptr=model.pixel_queue.ptr,
                  instance_queue=model.instance_queue.queue, centroids_dsc=
                  model.semantic_head.centroids)
    torch.save(result, f'{out_dir}/rank{rank}.pth')
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope='module')
def results(tmp_path_factory, tiny):
    out_dir = tmp_path_factory.mktemp('dist')
    cfg = tiny.dsc(queue_len=32, semantic_head=dict(type='KMeansSemanticHead', num_classes=4,
                                                    feat_dim=tiny.feat_dim, num_iters=3))
    mp.spawn(_worker, args=(_free_port(), str(out_dir), cfg), nprocs=WORLD, join=True)
    return [torch.load(out_dir / f'rank{r}.pth') for r in range(WORLD)]


def test_pool_and_kmeans_labels_equal_one_process_on_the_concatenated_batch(results):
    from dsc_mm.models.heads import KMeansSemanticHead
    from dsc_mm.models.utils import global_pixel_pool
    local = [_local_keys(r) for r in range(WORLD)]
    pool, rows = global_pixel_pool(torch.cat([k for k, _ in local]),
                                   torch.cat([m for _, m in local]))
    head = KMeansSemanticHead(num_classes=4, feat_dim=CHANNELS)
    torch.manual_seed(0)
    labels = head.cluster(pool)
    per_rank = BATCH * NUM_LOC
    for rank, res in enumerate(results):
        assert torch.equal(res['pool'], pool)
        assert torch.equal(res['rows'], rows[rank * per_rank:(rank + 1) * per_rank])
        assert torch.equal(res['labels'], labels)
        assert torch.allclose(res['centroids'], head.centroids, atol=1e-6)


def test_queue_advances_by_the_global_batch(results):
    for res in results:
        assert res['queue_ptr'].item() == WORLD * BATCH
        for rank in range(WORLD):
            block = res['queue'][:, rank * BATCH:(rank + 1) * BATCH]
            assert torch.all(block == rank + 1)


def test_dsc_step_keeps_replicas_identical(results):
    first, second = results
    for res in results:
        assert res['instance_ptr'].item() == WORLD * BATCH
        assert res['pixel_ptr'].item() == WORLD * BATCH
    assert torch.equal(first['instance_queue'], second['instance_queue'])
    assert torch.equal(first['centroids_dsc'], second['centroids_dsc'])
    assert torch.isfinite(first['loss']) and torch.isfinite(second['loss'])


def test_bounded_set_holds_own_pixels_and_one_sample_shared_by_the_ranks(results):
    from dsc_mm.models.utils import pixel_pool
    local = [_local_keys(r)[0].permute(0, 2, 1).reshape(-1, CHANNELS) for r in range(WORLD)]
    assert torch.equal(results[0]['sample'], results[1]['sample'])
    for rank, res in enumerate(results):
        assert res['bounded'].shape == (BATCH * NUM_LOC + 2, CHANNELS)
        assert torch.equal(res['bounded'][:BATCH * NUM_LOC], local[rank])
        assert torch.equal(res['bounded_rows'], res['rows'] - rank * BATCH * NUM_LOC)
        other = local[1 - rank]
        for row in res['bounded'][BATCH * NUM_LOC:]:
            assert (row[None] == other).all(1).any()  # a pixel of the other rank
        # The shared sample is rank 0's 10 picks followed by rank 1's; the contrast set takes
        # the first 2 of the other rank's.
        assert res['sample'].shape == (20, CHANNELS)
        assert torch.equal(res['sample'][10 * rank:10 * (rank + 1)],
                           local[rank][pixel_pool.sample_rows(BATCH * NUM_LOC, 10, 3, rank,
                                                              'cpu')])
        assert torch.equal(res['sample'][10 * (1 - rank):10 * (1 - rank) + 2],
                           res['bounded'][BATCH * NUM_LOC:])
