"""A nominator that is a mixture of experts gated by the user (context), not the item.

:func:`~widelab_recsys.learn_pools` routes *items* to experts (the item-gated mixture of
Hron et al. 2021, Sec. 4.2, whose hard gate is a pool allocation). Here the gate reads
the *user's* features: each user is served by a mixture of low-capacity experts, so
different user groups can be served by different experts over the same item pool.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from widelab_core.validate import require_int

from .softmax_nominators import _glorot, _JaxNominator, _jit_score, _normal

__all__ = ["ContextMoENominator"]


@dataclasses.dataclass
class ContextMoENominator(_JaxNominator):
    """Mixture of ``n_experts`` linear softmax experts with a gate on the user's features.

    Expert ``e`` scores ``s_e(u, i) = (f_u A_e)·q_{e,i} + b_{e,i}`` (a
    :class:`LinearNominator` of rank ``rank``); the gate is
    ``g(u) = softmax(f_u W + c)`` over experts, a function of the user (context) features
    only; the nominator scores ``s(u, i) = Σ_e g_e(u) s_e(u, i)``, the gated sum of the
    experts' outputs (Shazeer et al. 2017, eq. 1, with a dense softmax gate, eq. 2
    without noise or sparsity). Experts and gate are trained jointly with optax Adam on
    the multinomial likelihood of :mod:`.softmax_nominators`. With ``rank = 0`` every
    expert is a popularity model over the pool, and all personalisation goes through the
    gate. The score is a dot product of ``E (r + 1)``-dimensional embeddings
    (``[g_e(u) f_u A_e]_e ++ g(u)`` with ``[q_{e,i}]_e ++ [b_{e,i}]_e``), so it joins the
    recommender's fused serving path.

    Args:
        n_experts: E.
        rank: embedding dimension r of every expert (0: popularity experts).
        epochs, batch_size, learning_rate, l2, seed: training settings.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> from widelab_recsys import ContextMoENominator
        >>> m = sp.csr_matrix(np.eye(6, 4, dtype=np.float32))
        >>> nom = ContextMoENominator(n_experts=2, rank=0, epochs=2).fit(
        ...     m, user_features=np.eye(6, 3), item_features=np.eye(4, 2))
        >>> nom.user_gate(np.arange(6), user_features=np.eye(6, 3)).shape
        (6, 2)
    """

    kind: ClassVar[str] = "context_moe"
    item_axes: ClassVar[dict] = {"Q": 1, "B": 1}
    n_experts: int = 2

    def __post_init__(self):
        super().__post_init__()
        require_int(self.n_experts, "n_experts", min=1)

    def init_params(self, rng, f_dim, g_dim, n_items):
        e, r = self.n_experts, self.rank
        return {
            "A": np.stack([_glorot(rng, (f_dim, r)) for _ in range(e)]),
            "Q": np.float32(0.1) * _normal(rng, (e, n_items, r)),
            "B": np.zeros((e, n_items), np.float32),
            "W": _glorot(rng, (f_dim, e)),
            "c": np.zeros((e,), np.float32),
        }

    @staticmethod
    def gate(params, fu):
        """Gate probabilities ``(batch, E)`` from user features ``fu``."""
        return jax.nn.softmax(fu @ params["W"] + params["c"][None, :], axis=-1)

    @staticmethod
    def score(params, fu, gi):
        g = ContextMoENominator.gate(params, fu)
        eu = jnp.einsum("bf,efr->ebr", fu, params["A"])
        s_e = jnp.einsum("ebr,eir->ebi", eu, params["Q"]) + params["B"][:, None, :]
        return jnp.einsum("ebi,be->bi", s_e, g)

    @staticmethod
    def embed(params, fu, gi):
        """User and item embeddings whose dot products are :meth:`score`."""
        g = ContextMoENominator.gate(params, fu)
        eu = jnp.einsum("bf,efr->ber", fu, params["A"]) * g[:, :, None]
        u = jnp.concatenate([eu.reshape(fu.shape[0], -1), g], axis=1)
        q = jnp.moveaxis(params["Q"], 0, 1)  # (items, E, r)
        v = jnp.concatenate([q.reshape(q.shape[0], -1), params["B"].T], axis=1)
        return u, v

    def _user_features(self, userids, user_features, what):
        if self.params is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")
        if user_features is None:
            raise ValueError(f"{type(self).__name__}.{what} needs user_features")
        return np.asarray(user_features, dtype=np.float32)[np.asarray(userids)]

    def user_gate(self, userids, *, user_features=None) -> np.ndarray:
        """Gate probabilities ``g(u)`` of the given users, ``(n, E)``.

        Args:
            userids: user rows of ``user_features``.
            user_features: ``(n_users, F)`` features, as at ``fit``.

        Returns:
            ``(len(userids), n_experts)`` array whose rows sum to 1.
        """
        fu = self._user_features(userids, user_features, "user_gate")
        return np.asarray(_jit_score(ContextMoENominator.gate)(self.params, fu))

    def embeddings(self, userids, *, user_features=None):
        fu = self._user_features(userids, user_features, "embeddings")
        u, v = _jit_score(ContextMoENominator.embed)(self.params, fu, self.item_features)
        return np.asarray(u), np.asarray(v)[: self.n_items]

    def _config(self):
        return {**super()._config(), "n_experts": self.n_experts}
