"""global_pixel_pool: flattening order and matched rows (one process; see test_dsc_dist)."""
import torch

from dsc_mm.models.utils import global_pixel_pool


def test_pool_rows_point_at_the_matched_key_pixel():
    torch.manual_seed(0)
    key_dense = torch.randn(3, 5, 4)  # (B, C, S*S)
    match = torch.randint(0, 4, (3, 4))  # (B, S*S)
    pool, rows = global_pixel_pool(key_dense, match)
    assert pool.shape == (12, 5) and rows.shape == (12, )
    for b in range(3):
        for i in range(4):
            assert torch.equal(pool[rows[b * 4 + i]], key_dense[b, :, match[b, i]])
