"""Building blocks of DSC: queue, neighbour discovery, pixel pool, clustering, equipartition."""
from .kmeans import nearest_centroid, spherical_kmeans
from .neighbours import cross_view_neighbours, same_view_neighbours
from .pixel_pool import ContrastSet, bounded_pixel_pool, global_pixel_pool
from .precision import at_least_float32, float32_region
from .queue import FeatureQueue
from .sinkhorn import sinkhorn_knopp

__all__ = [
    'ContrastSet', 'FeatureQueue', 'at_least_float32', 'bounded_pixel_pool',
    'cross_view_neighbours', 'float32_region', 'global_pixel_pool', 'nearest_centroid',
    'same_view_neighbours', 'sinkhorn_knopp', 'spherical_kmeans'
]
