"""Frozen-feature probes: evaluate a pretrained backbone without fine-tuning it.

Configs pull them in with ``custom_imports = dict(imports=['dsc_mm', 'dsc_mm.probes'])``.
"""
from .feature_cache import FeatureCache
from .frozen_encoder_decoder import FrozenEncoderDecoder
from .linear_head import LinearProbeHead

__all__ = ['FeatureCache', 'FrozenEncoderDecoder', 'LinearProbeHead']
