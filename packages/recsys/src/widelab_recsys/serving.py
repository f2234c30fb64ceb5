"""Serving paths of the two-stage recommender: nominate every pool, rank the union.

:func:`serve` runs both stages for every requested user in one compiled call: a
``lax.map`` over fixed-size blocks of users (small blocks keep the scores and the gathered
candidate features in cache) scores each pool with the nominators' factorised embeddings,
masks blocked items (liked items arrive as per-block coordinate lists, so no dense
``(users, items)`` mask is built on the host), keeps each pool's top ``k``, and lets the
ranker score the union and keep the top ``N``. :func:`rank_union` is the ranker stage
alone, for candidates that come from elsewhere.

Ties in the ranker stage go to the candidate listed first in the union (``lax.top_k``
keeps the lower index), which lists pools in order and each pool's nominees best first.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ._validate import single_threaded_blas
from .ranker import score_candidates


def blocked_coordinates(blocked, block: int, n_items: int):
    """Per-block ``(row, col)`` lists of a CSR ``blocked`` matrix, padded to one length.

    Padding entries point at the dummy column ``n_items``.

    Returns:
        ``(rows (n_blocks, L) int32, cols (n_blocks, L) int32)``.
    """
    n = blocked.shape[0]
    n_blocks = -(-n // block)
    counts = np.diff(blocked.indptr)
    row = np.repeat(np.arange(n), counts)
    starts = blocked.indptr[np.minimum(np.arange(n_blocks + 1) * block, n)]
    length = max(1, int(np.diff(starts).max()) if n_blocks else 1)
    rows = np.zeros((n_blocks, length), np.int32)
    cols = np.full((n_blocks, length), n_items, np.int32)
    b = row // block
    pos = np.arange(blocked.nnz) - starts[b]
    rows[b, pos] = row - b * block
    cols[b, pos] = blocked.indices
    return rows, cols


def serve(
    user_vecs,
    item_vecs,
    pool_items,
    blocked,
    blocked_all,
    params,
    user_features,
    users,
    item_features,
    *,
    k: int,
    n_out: int,
    block: int = 256,
):
    """Both stages for every requested user in one compiled call.

    Args:
        user_vecs: per pool, ``(n, r_j)`` user embeddings of the nominator.
        item_vecs: per pool, ``(n_j, r_j)`` item embeddings.
        pool_items: per pool, ``(n_j,)`` global item ids.
        blocked: CSR ``(n, n_items)`` items blocked per user (already liked), or None.
        blocked_all: ``(n_items,)`` bool, items blocked for every user, or None.
        params: ranker parameters.
        user_features: ``(n_table, F)`` table indexed by ``users``.
        users: ``(n,)`` rows of ``user_features`` and of the ranker's id embeddings.
        item_features: ``(n_items, G)``.
        k: candidates per nominator.
        n_out: items served per user.
        block: users per step of the compiled loop.

    Returns:
        ``(ids (n, n_out) int64, scores (n, n_out) float32)``; empty slots ``-1``, ``-inf``.
    """
    n = len(users)
    n_items = item_features.shape[0]
    bs = max(1, min(block, n))
    n_blocks = -(-n // bs)
    n_pad = n_blocks * bs

    def blocks(x, fill=0):
        x = np.asarray(x)
        out = np.full((n_pad, *x.shape[1:]), fill, x.dtype)
        out[:n] = x
        return jnp.asarray(out.reshape(n_blocks, bs, *x.shape[1:]))

    if blocked is None:
        b_rows = np.zeros((n_blocks, 1), np.int32)
        b_cols = np.full((n_blocks, 1), n_items, np.int32)
    else:
        b_rows, b_cols = blocked_coordinates(blocked, bs, n_items)
    mask_all = np.zeros((n_items + 1,), bool)
    if blocked_all is not None:
        mask_all[:n_items] = blocked_all
    ids, sc = _serve_blocks(
        tuple(blocks(np.asarray(u, np.float32)) for u in user_vecs),
        tuple(jnp.asarray(v, jnp.float32) for v in item_vecs),
        tuple(jnp.asarray(c, jnp.int32) for c in pool_items),
        jnp.asarray(b_rows),
        jnp.asarray(b_cols),
        jnp.asarray(mask_all),
        params,
        jnp.asarray(user_features, jnp.float32),
        blocks(np.asarray(users, np.int32)),
        jnp.asarray(item_features, jnp.float32),
        k=k,
        n_out=n_out,
    )
    ids = np.asarray(ids).reshape(n_pad, n_out)[:n].astype(np.int64)
    sc = np.asarray(sc).reshape(n_pad, n_out)[:n]
    return ids, sc


@functools.partial(jax.jit, static_argnames=("k", "n_out"))
def _serve_blocks(
    user_vecs, item_vecs, pool_items, b_rows, b_cols, mask_all, params, fu, users, gi, *, k, n_out
):
    def one(args):
        uv, br, bc, u = args
        bs = u.shape[0]
        mask = jnp.zeros((bs, mask_all.shape[0]), bool).at[br, bc].set(True) | mask_all[None, :]
        cands = []
        for j in range(len(item_vecs)):
            s = jnp.where(mask[:, pool_items[j]], -jnp.inf, uv[j] @ item_vecs[j].T)
            top_s, top_i = _top_k(s, k)
            cands.append(jnp.where(jnp.isfinite(top_s), pool_items[j][top_i], -1))
        c = jnp.concatenate(cands, axis=1)
        return _rank_one_block(c, params, fu, u, gi, n_out)

    return jax.lax.map(one, (user_vecs, b_rows, b_cols, users))


def _rank_one_block(c, params, fu, u, gi, n_out):
    valid = c >= 0
    sc = score_candidates(params, fu, u, jnp.maximum(c, 0), gi)
    sc = jnp.where(valid, sc, -jnp.inf)
    top_s, top_i = _top_k(sc, n_out)
    top_ids = jnp.take_along_axis(c, top_i, axis=1)
    return jnp.where(jnp.isfinite(top_s), top_ids, -1), top_s


def rank_union(cand, params, user_features, users, item_features, n_out: int, block: int = 256):
    """Ranker scores of a candidate union and the top ``n_out``, in one compiled call.

    Args:
        cand: ``(n, c)`` global candidate ids (``-1`` = empty).
        params: ranker parameters.
        user_features: ``(n_users, F)`` table indexed by ``users``.
        users: ``(n,)`` rows of ``user_features`` (and of the ranker's id embeddings).
        item_features: ``(n_items, G)``.
        n_out: items to keep.
        block: users per step of the compiled loop.

    Returns:
        ``(ids (n, n_out) int64, scores (n, n_out) float32)``; empty slots ``-1``, ``-inf``.
    """
    n = cand.shape[0]
    bs = max(1, min(block, n))
    n_pad = -(-n // bs) * bs
    cand_p = np.full((n_pad, cand.shape[1]), -1, np.int32)
    cand_p[:n] = cand
    users_p = np.zeros((n_pad,), np.int32)
    users_p[:n] = users
    ids, sc = _rank_blocks(
        jnp.asarray(cand_p.reshape(n_pad // bs, bs, -1)),
        params,
        jnp.asarray(user_features, jnp.float32),
        jnp.asarray(users_p.reshape(n_pad // bs, bs)),
        jnp.asarray(item_features, jnp.float32),
        n_out=n_out,
    )
    ids = np.asarray(ids).reshape(n_pad, n_out)[:n].astype(np.int64)
    sc = np.asarray(sc).reshape(n_pad, n_out)[:n]
    return ids, sc


def _top_k(scores, k):
    """``lax.top_k`` padded with ``-inf`` when there are fewer than ``k`` columns."""
    kk = min(k, scores.shape[1])
    s, i = jax.lax.top_k(scores, kk)
    if kk < k:
        s = jnp.pad(s, ((0, 0), (0, k - kk)), constant_values=-jnp.inf)
        i = jnp.pad(i, ((0, 0), (0, k - kk)))
    return s, i


@functools.partial(jax.jit, static_argnames=("n_out",))
def _rank_blocks(cand, params, fu, users, gi, *, n_out):
    def one(args):
        c, u = args
        return _rank_one_block(c, params, fu, u, gi, n_out)

    return jax.lax.map(one, (cand, users))


def cosine_topk(vectors, query, N: int, filter_ids=None, subset=None):
    """implicit's ``similar_items`` rule on a table of embeddings.

    Scores are cosine similarities ``q·v / (|q| |v|)`` (zero norms replaced by 1e-10, as
    implicit does); ``subset`` restricts the candidates, ``filter_ids`` removes some.

    Args:
        vectors: ``(n, r)`` embeddings of every row.
        query: ``(r,)`` or ``(b, r)`` query embeddings.
        N: results per query (clipped to the number of candidates).
        filter_ids: optional ids never returned.
        subset: optional ids to rank (sorted as given).

    Returns:
        ``(ids, scores)`` of shape ``(N,)`` or ``(b, N)``.
    """
    from implicit.cpu.topk import topk

    v = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1)
    norms[norms == 0] = 1e-10
    if subset is not None:
        subset = np.asarray(subset, dtype=np.int64)
        v, norms = np.ascontiguousarray(v[subset]), norms[subset]
    q = np.asarray(query, dtype=np.float32)
    single = q.ndim == 1
    q = np.atleast_2d(q)
    qn = np.linalg.norm(q, axis=1)
    qn[qn == 0] = 1e-10
    n_res = min(N, v.shape[0])
    fil = None if filter_ids is None else np.asarray(filter_ids, dtype=np.int32)
    with single_threaded_blas():
        ids, sc = topk(v, q, n_res, item_norms=norms, filter_items=fil, num_threads=0)
    ids = np.asarray(ids, dtype=np.int64)
    sc = np.asarray(sc, dtype=np.float32) / qn[:, None]
    if subset is not None:
        ids = subset[ids]
    return (ids[0], sc[0]) if single else (ids, sc)
