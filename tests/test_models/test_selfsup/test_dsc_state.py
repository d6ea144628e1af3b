"""Save -> load round trip restores every piece of DSC's training state exactly."""
import pytest
import torch
from mmpretrain.registry import MODELS

from dsc_mm.utils import load_checkpoint_file

STATE_KEYS = ('instance_queue.queue', 'instance_queue.ptr', 'pixel_queue.queue',
              'pixel_queue.ptr', 'encoder_k.module.0.conv1.weight', 'encoder_k.steps',
              'iter_count')


def _train_steps(model, num_steps, seed):
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(seed)
    for _ in range(num_steps):
        optim.zero_grad()
        losses = model.loss([torch.randn(4, 3, 64, 64) for _ in range(2)], None)
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optim.step()
    return losses


@pytest.mark.parametrize('semantic', [
    dict(type='KMeansSemanticHead', num_classes=4, num_iters=3),
    dict(type='PrototypeSemanticHead', num_classes=4, freeze_prototypes_iters=1),
])
def test_state_dict_round_trip_restores_training_state(tiny, tmp_path, semantic):
    semantic = dict(semantic, feat_dim=tiny.feat_dim)
    torch.manual_seed(0)
    model = MODELS.build(tiny.dsc(semantic_head=semantic, semantic_ramp=(1, 3)))
    _train_steps(model, num_steps=3, seed=1)
    path = tmp_path / 'dsc.pth'
    torch.save(dict(state_dict=model.state_dict()), path)

    torch.manual_seed(99)  # a fresh model with different initial weights and queues
    fresh = MODELS.build(tiny.dsc(semantic_head=semantic, semantic_ramp=(1, 3)))
    assert not torch.equal(fresh.instance_queue.queue, model.instance_queue.queue)
    fresh.load_state_dict(load_checkpoint_file(str(path))['state_dict'])

    saved = model.state_dict()
    for name, value in fresh.state_dict().items():
        assert torch.equal(value, saved[name]), name
    for name in STATE_KEYS:
        assert name in saved
    assert fresh.iter_count.item() == 3 and fresh.instance_queue.ptr.item() == 12
    extra = 'semantic_head.centroids' if 'KMeans' in semantic['type'] else \
        'semantic_head.prototypes'
    assert torch.equal(fresh.state_dict()[extra], saved[extra])
    assert torch.equal(fresh.loss_weights()[2], model.loss_weights()[2])

    # The restored model continues exactly like the original (warm-started k-means, same
    # schedules, same queues).
    after_original = _train_steps(model, num_steps=1, seed=5)
    after_restored = _train_steps(fresh, num_steps=1, seed=5)
    for key, value in after_original.items():
        assert torch.equal(after_restored[key], value), key
