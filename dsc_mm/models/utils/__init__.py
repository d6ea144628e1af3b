"""Building blocks of DSC: queue, neighbour discovery, pixel pool, clustering, equipartition."""
from .kmeans import spherical_kmeans
from .neighbours import cross_view_neighbours, same_view_neighbours
from .pixel_pool import global_pixel_pool
from .queue import FeatureQueue
from .sinkhorn import sinkhorn_knopp

__all__ = [
    'FeatureQueue', 'cross_view_neighbours', 'global_pixel_pool', 'same_view_neighbours',
    'sinkhorn_knopp', 'spherical_kmeans'
]
