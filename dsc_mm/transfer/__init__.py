"""Checkpoint conversion and ``--pretrained`` initialisation for the transfer benchmarks."""
from .convert import convert_backbone, convert_checkpoint
from .detectron2 import rename_key, to_detectron2
from .keys import detect_depth, extract_backbone, load_backbone
from .pretrained import PretrainedCheckHook, apply_pretrained, check_loaded
from .targets import TARGETS, reference_shapes

__all__ = [
    'TARGETS', 'PretrainedCheckHook', 'apply_pretrained', 'check_loaded', 'convert_backbone',
    'convert_checkpoint', 'detect_depth', 'extract_backbone', 'load_backbone', 'reference_shapes',
    'rename_key', 'to_detectron2'
]
