"""LinearProbeHead: a 1x1 convolution on per-channel standardised features, nothing else."""
import torch

from dsc_mm.probes import LinearProbeHead


def _head():
    torch.manual_seed(0)
    return LinearProbeHead(in_channels=8, num_classes=3, in_index=0)


def test_only_the_linear_classifier_learns():
    head = _head()
    params = dict(head.named_parameters())
    assert set(params) == {'conv_seg.weight', 'conv_seg.bias'}
    assert params['conv_seg.weight'].shape == (3, 8, 1, 1)
    assert head.channels == head.in_channels == 8
    assert head.dropout is None  # a probe: no dropout unless asked


def test_logits_at_feature_resolution_and_scale_invariant():
    head = _head().train()
    x = torch.randn(2, 8, 5, 7)
    logits = head([x])
    assert logits.shape == (2, 3, 5, 7)
    # Per-channel standardisation: a backbone whose C5 is 1000x larger gets the same logits,
    # so one learning rate fits random and pretrained backbones.
    torch.testing.assert_close(head([x * 1000 + 3]), logits, rtol=1e-4, atol=1e-4)


def test_linear_in_the_features_at_test_time():
    head = _head().train()
    head([torch.randn(4, 8, 6, 6) * 3 + 1])  # running statistics that are not the identity
    head.eval()
    a, b = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    zero = head([torch.zeros(1, 8, 4, 4)])
    # An affine map: f(a + b) - f(0) = (f(a) - f(0)) + (f(b) - f(0)).
    torch.testing.assert_close(head([a + b]) - zero, (head([a]) - zero) + (head([b]) - zero),
                               rtol=1e-5, atol=1e-5)
