"""The dense linear probe's classifier: one 1x1 convolution over normalised features."""
from typing import List

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class LinearProbeHead(BaseDecodeHead):
    """A linear per-pixel classifier on one feature map, for frozen-feature probes.

    The selected map (``in_index``) is standardised per channel by a BatchNorm without
    affine parameters, then classified by mmseg's ``conv_seg`` (a 1x1 convolution). As in
    MAE's linear probe, the normalisation only removes the scale differences between
    backbones (a random ResNet's C5 can be orders of magnitude larger than a pretrained one)
    so that one learning rate fits every row; at test time it is a fixed affine map, so the
    classifier stays linear in the features. mmseg upsamples the logits to the label map in
    the loss and to the image in ``predict``.

    Args:
        in_channels (int): Channels of the selected feature map.
        dropout_ratio (float): Dropout before the classifier. Defaults to 0 (a probe).
        **kwargs: The other arguments of :class:`mmseg.models.decode_heads.BaseDecodeHead`
            (``num_classes``, ``in_index``, ``loss_decode``...); ``channels`` is
            ``in_channels`` (there is no hidden layer).
    """

    def __init__(self, in_channels: int, dropout_ratio: float = 0., **kwargs):
        super().__init__(in_channels, in_channels, dropout_ratio=dropout_ratio, **kwargs)
        self.norm = nn.BatchNorm2d(in_channels, affine=False)

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Logits ``(B, num_classes, h, w)`` at the feature map's resolution."""
        x = self._transform_inputs(inputs)  # (B, C, h, w)
        return self.cls_seg(self.norm(x))
