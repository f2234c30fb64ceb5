"""Default user and item features from the interaction matrix (truncated SVD)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._validate import check_user_items

__all__ = ["svd_features"]


def svd_features(user_items, dim: int = 16, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Low-rank user and item features ``U sqrt(S)``, ``V sqrt(S)`` of the binarised matrix.

    The matrix is binarised and rows are scaled by ``1/sqrt(activity)`` before a randomized
    truncated SVD (Halko, Martinsson & Tropp 2011), so heavy users do not dominate.
    Features are standardised column-wise to unit variance.

    Args:
        user_items: sparse ``(n_users, n_items)`` interactions.
        dim: number of components (clipped to ``min(shape) - 1``).
        seed: seed of the randomized SVD.

    Returns:
        ``(user_features (n_users, dim), item_features (n_items, dim))`` as float32.

    Raises:
        ValueError: if ``dim < 1``.
    """
    from sklearn.utils.extmath import randomized_svd

    if dim < 1:
        raise ValueError(f"dim must be >= 1; got {dim}")
    m = check_user_items(user_items)
    b = m.copy()
    b.data[:] = 1.0
    act = np.asarray(b.sum(axis=1)).ravel()
    scale = 1.0 / np.sqrt(np.maximum(act, 1.0))
    b = sp.diags(scale.astype(np.float32)) @ b
    k = max(1, min(dim, min(m.shape) - 1))
    u, s, vt = randomized_svd(b, n_components=k, random_state=seed, n_iter=4)
    uf = u * np.sqrt(s)[None, :]
    vf = vt.T * np.sqrt(s)[None, :]
    uf = uf / np.maximum(uf.std(axis=0, keepdims=True), 1e-8)
    vf = vf / np.maximum(vf.std(axis=0, keepdims=True), 1e-8)
    if k < dim:
        uf = np.pad(uf, ((0, 0), (0, dim - k)))
        vf = np.pad(vf, ((0, 0), (0, dim - k)))
    return uf.astype(np.float32), vf.astype(np.float32)
