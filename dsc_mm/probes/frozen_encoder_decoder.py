"""An mmseg segmentor whose backbone is frozen in eval mode: the dense linear probe's model."""
from typing import List, Optional

import torch
from mmseg.models import EncoderDecoder
from mmseg.registry import MODELS
from torch import Tensor

from .feature_cache import FeatureCache


@MODELS.register_module()
class FrozenEncoderDecoder(EncoderDecoder):
    """mmseg's ``EncoderDecoder`` with a frozen backbone: only the decode head learns.

    The backbone never receives gradients and always runs in eval mode, so its BN layers use
    (and keep) the running statistics of pretraining, whatever ``model.train()`` is called
    with. It is then a fixed function of the image, which makes two things exact:

    * its features need no autograd graph (computed under ``torch.no_grad``);
    * with ``cache_features=True`` every distinct input image goes through the backbone once
      per run (:class:`FeatureCache`); the linear-probe configs use a deterministic pipeline,
      so after the first epoch an iteration costs data loading plus the head.

    Args:
        cache_features (bool): Keep the backbone output of every distinct input image.
            Defaults to True.
        **kwargs: The arguments of :class:`mmseg.models.EncoderDecoder`. A ``neck`` is
            refused (it would be trained, and the cache would hold stale neck outputs);
            give the head the backbone stage it reads through ``in_index``.
    """

    def __init__(self, *args, cache_features: bool = True, **kwargs):
        if kwargs.get('neck') is not None:
            raise ValueError('FrozenEncoderDecoder takes no neck (model.neck): the probe reads '
                             'the frozen backbone directly; remove model.neck from the config.')
        super().__init__(*args, **kwargs)
        self.backbone.requires_grad_(False)
        self.feature_cache = FeatureCache() if cache_features else None
        # Loading weights (init_weights from --pretrained, resume) makes cached features stale.
        self._register_load_state_dict_pre_hook(self._clear_cache)

    def _clear_cache(self, *args, **kwargs) -> None:
        if self.feature_cache is not None:
            self.feature_cache.clear()

    def init_weights(self) -> None:
        super().init_weights()
        self._clear_cache()

    def train(self, mode: bool = True) -> 'FrozenEncoderDecoder':
        super().train(mode)
        self.backbone.eval()  # BN statistics stay those of pretraining
        return self

    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """Backbone features of ``inputs`` ``(B, 3, H, W)``, without autograd history.

        Returns:
            list[Tensor]: One ``(B, C_l, h_l, w_l)`` map per backbone output.
        """
        if self.feature_cache is not None:
            return list(self.feature_cache(self.backbone, inputs))
        with torch.no_grad():
            return list(self.backbone(inputs))

    @property
    def cache_stats(self) -> Optional[dict]:
        """Hits and misses of the feature cache so far (None without a cache)."""
        if self.feature_cache is None:
            return None
        return dict(hits=self.feature_cache.hits, misses=self.feature_cache.misses,
                    entries=len(self.feature_cache))
