"""Nominators: cheap models that each score only the items of their own pool.

Every nominator works on *pool-local* columns: it is fitted on the ``(n_users, n_pool)``
sub-matrix of its pool and returns pool-local ids; :class:`~widelab_recsys.TwoStageRecommender`
maps them back to global item ids. Matrix-factorisation nominators wrap ``implicit``
(ALS: Hu, Koren & Volinsky 2008; BPR: Rendle et al. 2009; :mod:`.mf_nominators`); the JAX
nominators are low-capacity softmax models trained on the multinomial likelihood of each
user's items (Liang et al. 2018, eq. 2; :mod:`.softmax_nominators`; the user-gated
mixture of experts in :mod:`.moe_nominators`). This module gathers
them and rebuilds saved ones.
"""

from __future__ import annotations

from .mf_nominators import ALSNominator, BPRNominator
from .moe_nominators import ContextMoENominator
from .nominator_base import Nominator, topk_filtered
from .softmax_nominators import LinearNominator, TwoTowerNominator

__all__ = [
    "ALSNominator",
    "BPRNominator",
    "ContextMoENominator",
    "LinearNominator",
    "Nominator",
    "TwoTowerNominator",
    "nominator_from_state",
    "topk_filtered",
]


_KINDS = {
    c.kind: c
    for c in (ALSNominator, BPRNominator, ContextMoENominator, LinearNominator, TwoTowerNominator)
}


def nominator_from_state(config: dict, arrays: dict) -> Nominator:
    """Rebuild a fitted nominator from :meth:`Nominator.state` output.

    Raises:
        ValueError: for an unknown ``kind``.
    """
    config = dict(config)
    kind = config.pop("kind", None)
    if kind not in _KINDS:
        raise ValueError(f"unknown nominator kind {kind!r}; known: {sorted(_KINDS)}")
    return _KINDS[kind](**config)._restore(arrays)
