"""The item step of the JAX softmax nominators: new items without a full refit.

With every other parameter held at its fitted value, the item-indexed parameters of the
given items (``q_i`` and ``b_i`` of :class:`LinearNominator`, ``b_i`` of
:class:`TwoTowerNominator`, whose item embedding is its tower's output, ``q_{e,i}`` and
``b_{e,i}`` of :class:`ContextMoENominator`) minimise the training objective of
:mod:`.softmax_nominators` over the fitted users,

``L(θ_new) = (1/N) Σ_u [n_u log Σ_j exp s(u, j) - Σ_{i new} y_ui s(u, i)] + l2 ||θ_new||²``

(the terms of items not refitted are constant), where ``n_u`` is the user's total target
mass at ``fit`` plus the given rows of new items and ``N = Σ_u n_u``. The scores are
linear in ``θ_new``, so ``L`` is convex (strictly for ``l2 > 0``) and L-BFGS (optax) finds
its minimiser. A refitted known item's change of count is not added to ``n_u``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__: list[str] = []

_CACHE: dict = {}


def _index(axis: int, ids):
    return (slice(None),) * axis + (ids,)


def item_step(score, axes: dict, iterations: int):
    """A jitted L-BFGS minimiser of the module's objective, cached per model class.

    Args:
        score: the model's ``score(params, fu, gi)``.
        axes: item axis of each item-indexed parameter.
        iterations: L-BFGS iterations.

    Returns:
        ``solve(params, ids, fu, gi, y, activity, n_valid, l2) -> free`` where ``free``
        maps each item-indexed parameter name to its rows for ``ids``.
    """
    key = (score, tuple(sorted(axes.items())), iterations)
    if key in _CACHE:
        return _CACHE[key]

    @jax.jit
    def solve(params, ids, fu, gi, y, activity, n_valid, l2):
        def objective(free):
            p = {
                k: v.at[_index(axes[k], ids)].set(free[k]) if k in free else v
                for k, v in params.items()
            }
            s = score(p, fu, gi)  # (n_users, n_pad)
            valid = (jnp.arange(s.shape[1]) < n_valid)[None, :]
            lse = jax.nn.logsumexp(jnp.where(valid, s, -jnp.inf), axis=1)
            fit = jnp.sum(activity * lse) - jnp.sum(y * s[:, ids])
            reg = sum(jnp.sum(f * f) for f in jax.tree.leaves(free))
            return fit / jnp.sum(activity) + l2 * reg

        free = {k: params[k][_index(a, ids)] for k, a in axes.items()}
        opt = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(objective)

        def body(carry, _):
            x, state = carry
            value, grad = value_and_grad(x, state=state)
            upd, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=objective)
            return (optax.apply_updates(x, upd), state), None

        (free, _), _ = jax.lax.scan(body, (free, opt.init(free)), None, length=iterations)
        return free

    _CACHE[key] = solve
    return solve


def grow_items(params: dict, axes: dict, item_features, n_items: int, n_pad: int, g_new):
    """Parameters and padded item features with room for ``n_pad`` items; new rows zero.

    Args:
        params: fitted parameters.
        axes: item axis of each item-indexed parameter.
        item_features: ``(n_pad_old, G)`` padded item features.
        n_items: items after the update.
        n_pad: padded size (``>= n_items``).
        g_new: ``(n_items - n_old, G)`` features of the appended items.

    Returns:
        ``(params, item_features)`` as NumPy arrays.
    """
    out = {}
    for k, v in params.items():
        v = np.asarray(v)
        if k in axes and v.shape[axes[k]] < n_pad:
            pad = [(0, 0)] * v.ndim
            pad[axes[k]] = (0, n_pad - v.shape[axes[k]])
            v = np.pad(v, pad)
        out[k] = v
    gi = np.asarray(item_features)
    if gi.shape[0] < n_pad:
        gi = np.pad(gi, ((0, n_pad - gi.shape[0]), (0, 0)))
    n_old = n_items - len(g_new)
    for k, a in axes.items():  # appended items start from zero, not from padding rows
        out[k] = out[k].copy()
        out[k][_index(a, slice(n_old, n_items))] = 0.0
    gi = gi.copy()
    gi[n_old:n_items] = g_new
    return out, gi
