"""FeatureQueue: one class for both of DSC's queues; FIFO with wrap-around."""
import pytest
import torch
import torch.nn.functional as F

from dsc_mm.models.utils import FeatureQueue


def test_queue_is_unit_and_fifo_with_wraparound():
    torch.manual_seed(0)
    queue = FeatureQueue(feat_dim=4, queue_len=5)
    assert queue.queue.shape == (4, 5)
    assert torch.allclose(queue.queue.norm(dim=0), torch.ones(5))
    first = F.normalize(torch.randn(3, 4), dim=1)
    second = F.normalize(torch.randn(3, 4), dim=1)
    queue.enqueue(first)
    assert queue.ptr.item() == 3
    assert torch.equal(queue.queue[:, :3], first.t())
    queue.enqueue(second)  # slots 3, 4 then wraps to 0
    assert queue.ptr.item() == 1
    assert torch.equal(queue.queue[:, 3:], second[:2].t())
    assert torch.equal(queue.queue[:, 0], second[2])
    assert torch.equal(queue.queue[:, 1:3], first[1:].t())  # not yet overwritten


def test_queue_refuses_a_batch_larger_than_itself():
    queue = FeatureQueue(feat_dim=4, queue_len=2)
    with pytest.raises(ValueError, match='queue_len'):
        queue.enqueue(torch.randn(3, 4))


def test_queue_state_is_checkpointed():
    queue = FeatureQueue(feat_dim=4, queue_len=8)
    queue.enqueue(torch.randn(3, 4))
    restored = FeatureQueue(feat_dim=4, queue_len=8)
    restored.load_state_dict(queue.state_dict())
    assert torch.equal(restored.queue, queue.queue) and restored.ptr.item() == 3


def test_a_batch_of_exactly_queue_len_fills_the_queue():
    queue = FeatureQueue(feat_dim=4, queue_len=3)
    assert repr(queue) == 'FeatureQueue(feat_dim=4, queue_len=3)'
    keys = F.normalize(torch.randn(3, 4), dim=1)
    queue.enqueue(keys)
    assert torch.equal(queue.queue, keys.t()) and queue.ptr.item() == 0
