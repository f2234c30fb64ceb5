"""Importance weights for nominator training from the ranker's policy.

Off-policy two-stage training (Ma et al., "Off-policy learning in two-stage recommender
systems", WWW 2020), the baseline Hron, Krauth, Jordan & Kilbertus describe in the
abstract of "Exploration in two-stage recommender systems" (2020) as "a nominator
training objective importance weighted by the ranker's probability of recommending each
item": instead of fitting each nominator to every observed interaction alike, weight the
interaction ``(u, i)`` by the ranker's probability of recommending ``i`` to ``u``,

    π_R(i | u) = exp(s_R(u, i) / τ) / Σ_j exp(s_R(u, j) / τ),

the softmax of the ranker's scores over the whole catalogue at temperature ``τ``. A
nominator then spends its capacity on the items the ranker would serve. The weights are
rescaled to mean 1 over the observed pairs, so an ALS confidence or a learning rate keeps
its scale; the multinomial loss of a softmax nominator becomes
``L = -Σ_u Σ_i w_ui y_ui log softmax_i(s(u, ·)) / Σ_ui w_ui y_ui``.

How this relates to Ma et al.'s two-stage objective ("2-IPS"). Their text beyond the
abstract was not available to check here, so no equation number is cited; what follows
is read from the authors' public implementation of 2-IPS (MovieLens experiments). There,
the nominator is a softmax policy ``π_θ`` trained on logged actions ``a`` with logging
propensities ``β(a | u)``, and the log-likelihood of each logged action is weighted by
(i) the clipped, batch-mean-normalised ratio ``π_θ(a | u) / β(a | u)`` and (ii) the
ranker's softmax probability of ``a`` *within a candidate set*: sets of candidates are
drawn from ``π_θ`` itself (``a`` added), and (ii) is the average over those sets of
``exp s_R(u, a) / Σ_{j ∈ C ∪ {a}} exp s_R(u, j)``; both factors are recomputed as ``π_θ``
trains (held constant in the gradient). This module keeps the factor the issue and
Hron et al. name, the ranker's probability of recommending the item, and simplifies it:

* the softmax runs over the whole catalogue instead of nominated candidate sets (per
  user, the ratio of two items' weights is the same, ``exp((s_R(u,i) - s_R(u,j))/τ)``;
  the users' relative total weights differ);
* the weights are computed once, from the fitted ranker, before the nominators are
  trained (no dependence on ``π_θ``), so every nominator family (ALS included) can use
  them;
* there is no logging-propensity factor: the interactions here are not logged by a known
  policy;
* ``τ`` tempers the ranker's softmax (in the authors' code a temperature tempers the
  sampling of candidate sets instead).

The mean-1 rescaling over the observed pairs matches the normalisation of the IPS factor
there.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from widelab_core.validate import require_float, require_int

from ._validate import check_user_items

__all__ = ["ranker_importance_weights"]


def ranker_importance_weights(
    ranker, user_items, user_features, item_features, *, temperature: float = 1.0, block=256
) -> sp.csr_matrix:
    """Weights ``w_ui ∝ π_R(i | u)`` on the observed pairs, rescaled to mean 1.

    Args:
        ranker: a fitted :class:`MLPRanker` (anything with its ``score`` method).
        user_items: sparse ``(n_users, n_items)`` interactions; the weights share its
            sparsity pattern.
        user_features: ``(n_users, F)`` features the ranker was fitted with.
        item_features: ``(n_items, G)`` likewise.
        temperature: ``τ`` of the ranker's softmax (larger: flatter weights).
        block: users scored per call (the last block is padded, so one compilation).

    Returns:
        CSR ``(n_users, n_items)`` float32 weights with the pattern of ``user_items``.

    Raises:
        ValueError: for a non-positive ``temperature`` or ``block``.

    Example:
        >>> import scipy.sparse as sp
        >>> from widelab_recsys import MLPRanker, svd_features
        >>> m = sp.random(30, 12, density=0.3, format="csr", random_state=0)
        >>> fu, gi = svd_features(m, 3)
        >>> r = MLPRanker(embedding_dim=4, hidden=4, epochs=1).fit(m, fu, gi)
        >>> w = ranker_importance_weights(r, m, fu, gi)
        >>> bool(abs(w.data.mean() - 1.0) < 1e-5)
        True
    """
    require_float(temperature, "temperature", min=0, min_open=True)
    require_int(block, "block", min=1)
    m = check_user_items(user_items).copy()
    m.sort_indices()
    n_users, n_items = m.shape
    bs = min(block, n_users)
    all_items = np.broadcast_to(np.arange(n_items), (bs, n_items))
    out = np.empty(m.nnz, np.float64)
    for start in range(0, n_users, bs):
        users = np.arange(start, start + bs)
        users = np.where(users < n_users, users, 0)
        s = ranker.score(users, all_items, user_features, item_features).astype(np.float64)
        logp = s / temperature
        logp -= logp.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        stop = min(start + bs, n_users)
        lo, hi = m.indptr[start], m.indptr[stop]
        rows = np.repeat(np.arange(stop - start), np.diff(m.indptr[start : stop + 1]))
        out[lo:hi] = np.exp(logp[rows, m.indices[lo:hi]])
    if out.size:
        out /= out.mean()
    return sp.csr_matrix((out.astype(np.float32), m.indices, m.indptr), shape=m.shape)
