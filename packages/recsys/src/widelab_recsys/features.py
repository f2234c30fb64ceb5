"""Default user and item features from the interaction matrix (truncated SVD)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._validate import check_user_items

__all__ = [
    "fold_in_items",
    "fold_in_users",
    "item_fold_in_scale",
    "svd_features",
    "user_fold_in_scale",
    "user_weights",
]


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


def _scaled_binary(user_items):
    b = check_user_items(user_items).copy()
    b.data[:] = 1.0
    act = np.asarray(b.sum(axis=1)).ravel()
    return sp.diags((1.0 / np.sqrt(np.maximum(act, 1.0))).astype(np.float32)) @ b


def user_fold_in_scale(user_items, user_features, item_features) -> np.ndarray:
    """Per-component scale ``c`` with ``user_features ≈ (B item_features) / c``.

    For an exact truncated SVD ``B = U S Vᵀ`` of the scaled binary matrix ``B`` of
    :func:`svd_features`, ``f_u = U S^{1/2} / σ_u`` and ``g_i = V S^{1/2} / σ_v`` give
    ``B g = f · (S σ_u / σ_v)``: a new user's features are its scaled row times the item
    features, divided by ``c = S σ_u / σ_v`` (the usual SVD fold-in, Sarwar et al. 2002).
    ``c`` is fitted per component by least squares on the training users, which absorbs the
    small error of the randomized SVD (a few percent on the weaker components).

    Args:
        user_items: the training matrix the features were computed from.
        user_features: ``(n_users, dim)`` its SVD user features.
        item_features: ``(n_items, dim)`` its SVD item features.

    Returns:
        ``(dim,)`` float32 scale (1 where a component is empty).
    """
    proj = np.asarray(_scaled_binary(user_items) @ item_features, dtype=np.float64)
    f = np.asarray(user_features, dtype=np.float64)
    den = (f * f).sum(axis=0)
    c = np.where(den > 0, (proj * f).sum(axis=0) / np.where(den > 0, den, 1.0), 1.0)
    c[np.abs(c) < 1e-12] = 1.0
    return c.astype(np.float32)


def fold_in_users(user_items, item_features, scale) -> np.ndarray:
    """SVD features of users from their interaction rows (see :func:`user_fold_in_scale`).

    Args:
        user_items: sparse ``(n, n_items)`` rows of the users.
        item_features: ``(n_items, dim)`` SVD item features of the fitted model.
        scale: ``(dim,)`` from :func:`user_fold_in_scale`.

    Returns:
        ``(n, dim)`` float32 user features.

    Example:
        >>> m = sp.random(60, 30, density=0.2, format="csr", random_state=0)
        >>> fu, gi = svd_features(m, 4)
        >>> c = user_fold_in_scale(m, fu, gi)
        >>> bool(np.abs(fold_in_users(m, gi, c) - fu).max() < 0.1)  # features have unit scale
        True
    """
    proj = np.asarray(_scaled_binary(user_items) @ item_features, dtype=np.float32)
    return (proj / np.asarray(scale, np.float32)[None, :]).astype(np.float32)


def user_weights(user_items) -> np.ndarray:
    """Row scales ``w_u = 1/sqrt(max(activity_u, 1))`` of :func:`svd_features`' matrix ``B``.

    Args:
        user_items: sparse ``(n_users, n_items)`` interactions.

    Returns:
        ``(n_users,)`` float32 weights (activity counts distinct items).
    """
    act = np.diff(check_user_items(user_items).indptr)
    return (1.0 / np.sqrt(np.maximum(act, 1.0))).astype(np.float32)


def item_fold_in_scale(user_items, user_features, item_features) -> np.ndarray:
    """Per-component scale ``c'`` with ``item_features ≈ (Bᵀ user_features) / c'``.

    The item side of :func:`user_fold_in_scale`: for ``B = U S Vᵀ``,
    ``Bᵀ f = V S^{3/2} / σ_u = g · (S σ_v / σ_u)``, so a new item's features are its scaled
    column times the user features divided by ``c' = S σ_v / σ_u`` (Sarwar et al. 2002),
    ``c'`` fitted per component by least squares on the training items.

    Args:
        user_items: the training matrix the features were computed from.
        user_features: ``(n_users, dim)`` its SVD user features.
        item_features: ``(n_items, dim)`` its SVD item features.

    Returns:
        ``(dim,)`` float32 scale (1 where a component is empty).
    """
    proj = np.asarray(_scaled_binary(user_items).T @ user_features, dtype=np.float64)
    g = np.asarray(item_features, dtype=np.float64)
    den = (g * g).sum(axis=0)
    c = np.where(den > 0, (proj * g).sum(axis=0) / np.where(den > 0, den, 1.0), 1.0)
    c[np.abs(c) < 1e-12] = 1.0
    return c.astype(np.float32)


def fold_in_items(item_users, user_features, weights, scale) -> np.ndarray:
    """SVD features of items from their ``(items, users)`` rows (implicit's ``item_users``).

    ``g_i = Σ_u [x_ui > 0] w_u f_u / c'`` with the training users' weights ``w_u``
    (:func:`user_weights`) and the scale of :func:`item_fold_in_scale`.

    Args:
        item_users: sparse ``(n, n_users)`` rows, one per item.
        user_features: ``(n_users, dim)`` SVD user features of the fitted model.
        weights: ``(n_users,)`` from :func:`user_weights`.
        scale: ``(dim,)`` from :func:`item_fold_in_scale`.

    Returns:
        ``(n, dim)`` float32 item features.

    Example:
        >>> m = sp.random(60, 30, density=0.2, format="csr", random_state=0)
        >>> fu, gi = svd_features(m, 4)
        >>> c = item_fold_in_scale(m, fu, gi)
        >>> g = fold_in_items(m.T.tocsr(), fu, user_weights(m), c)
        >>> bool(np.abs(g - gi).max() < 0.1)
        True
    """
    b = check_user_items(item_users).copy()
    b.data[:] = 1.0
    proj = np.asarray(b @ (np.asarray(weights, np.float32)[:, None] * user_features))
    return (proj / np.asarray(scale, np.float32)[None, :]).astype(np.float32)
