"""Interaction data sets shared by the recommender and game packages.

Readers for the real file formats (nothing is ever downloaded: point them at unpacked
archives) and seeded synthetic generators of the same shapes, all returning
:class:`InteractionData`: a CSR user x item matrix, raw-id maps and attribute tables.

Example:
    >>> from widelab_core.datasets import synthetic_movielens
    >>> data = synthetic_movielens(50, 80, n_interactions=600, seed=1)
    >>> data.matrix.shape, data.n_interactions
    ((50, 80), 600)
    >>> data.binarize(4).matrix.max()
    np.float32(1.0)
"""

from ._base import InteractionData
from .cifar import ImageData, read_cifar10, read_cifar100
from .lastfm import read_lastfm_360k
from .movielens import read_movielens, read_movielens_1m, read_movielens_100k
from .preprocessing import standardize_channels, zca_whiten
from .synthetic import synthetic_lastfm, synthetic_movielens

__all__ = [
    "ImageData",
    "InteractionData",
    "read_cifar10",
    "read_cifar100",
    "read_lastfm_360k",
    "read_movielens",
    "read_movielens_100k",
    "read_movielens_1m",
    "standardize_channels",
    "synthetic_lastfm",
    "synthetic_movielens",
    "zca_whiten",
]
