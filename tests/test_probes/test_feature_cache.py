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
