"""DSC's loss heads (the instance term reuses mmpretrain's ``ContrastiveHead``)."""
from .base_semantic_head import BaseSemanticHead
from .kmeans_semantic_head import KMeansSemanticHead
from .pixel_neighbour_head import PixelNeighbourHead, multi_positive_info_nce
from .prototype_semantic_head import PrototypeSemanticHead

__all__ = [
    'BaseSemanticHead', 'KMeansSemanticHead', 'PixelNeighbourHead', 'PrototypeSemanticHead',
    'multi_positive_info_nce'
]
