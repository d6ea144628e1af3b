"""FeatureCache: one forward per distinct image, the same values as the plain call."""
import torch

from dsc_mm.probes import FeatureCache


class CountingNet:
    """Two 'levels' of features per image; counts the images it is called on."""

    def __init__(self):
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.images = 0

    def __call__(self, x):
        self.images += x.shape[0]
        y = self.conv(x)
        return y, y.mean(dim=(2, 3), keepdim=True)


def test_cached_equals_plain_and_computes_each_image_once():
    net, cache = CountingNet(), FeatureCache()
    images = torch.randn(5, 3, 8, 8)
    first = cache(net, images[:3])
    plain = net(images[:3])
    for got, want in zip(first, plain):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        assert not got.requires_grad  # the frozen path keeps no autograd graph
    net.images = 0
    # A new batch mixing seen images (in another order) and new ones: only the new are computed.
    batch = images[[4, 1, 0, 3]]
    second = cache(net, batch)
    assert net.images == 2
    for got, want in zip(second, net(batch)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert (cache.hits, cache.misses, len(cache)) == (2, 5, 5)


def test_key_is_the_image_content_not_its_position():
    net, cache = CountingNet(), FeatureCache()
    image = torch.randn(1, 3, 8, 8)
    cache(net, image)
    # An augmented view (here: flipped, one pixel changed) is a different input: computed anew.
    flipped = image.flip(-1)
    tweaked = image.clone()
    tweaked[0, 0, 0, 0] += 1e-3
    out = cache(net, torch.cat([flipped, tweaked]))
    assert cache.misses == 3
    torch.testing.assert_close(out[0], net(torch.cat([flipped, tweaked]))[0], rtol=0, atol=1e-6)
    # The same image twice in one batch is computed once.
    net.images = 0
    twice = torch.randn(1, 3, 8, 8).repeat(2, 1, 1, 1)
    cache(net, twice)
    assert net.images == 1


def test_clear_forgets_everything():
    net, cache = CountingNet(), FeatureCache()
    images = torch.randn(2, 3, 8, 8)
    cache(net, images)
    cache.clear()
    net.images = 0
    cache(net, images)
    assert net.images == 2 and len(cache) == 2


def test_key_tells_apart_shape_and_dtype_of_the_same_bytes():
    image = torch.arange(12, dtype=torch.float32).reshape(3, 2, 2)
    same = FeatureCache.key(image.clone())
    assert FeatureCache.key(image) == same and len(same) == 16
    # The same bytes read as another shape or another dtype are another input.
    assert FeatureCache.key(image.reshape(3, 4, 1)) != same
    assert FeatureCache.key(image.view(torch.int32)) != same
    # Non-contiguous and gradient-carrying tensors are keyed by their values.
    assert FeatureCache.key(image.transpose(1, 2).contiguous().transpose(1, 2)) == same
    assert FeatureCache.key(image.clone().requires_grad_(True)) == same


def test_counts_of_a_batch_with_a_repeated_new_image():
    net, cache = CountingNet(), FeatureCache()
    a, b = torch.randn(2, 1, 3, 8, 8)
    out = cache(net, torch.cat([a, b, a]))
    assert net.images == 2 and (cache.hits, cache.misses, len(cache)) == (1, 2, 2)
    torch.testing.assert_close(out[0], net(torch.cat([a, b, a]))[0], rtol=0, atol=1e-6)
    assert [o.shape[0] for o in out] == [3, 3]
    # The counters add up over calls.
    net.images = 0
    cache(net, torch.cat([b, a]))
    assert net.images == 0 and (cache.hits, cache.misses) == (3, 2)
