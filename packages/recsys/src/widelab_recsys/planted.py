"""Simulated interaction data with planted item groups, and a hold-out split."""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from ._validate import check_user_items

__all__ = ["PlantedData", "planted_groups", "train_test_split"]


@dataclasses.dataclass(frozen=True)
class PlantedData:
    """Interactions with planted groups.

    Attributes:
        train: sparse ``(n_users, n_items)`` training interactions.
        test: sparse held-out interactions (disjoint from ``train``).
        user_group: ``(n_users,)`` planted user type.
        item_group: ``(n_items,)`` planted item group (items are sorted by group).
    """

    train: sp.csr_matrix
    test: sp.csr_matrix
    user_group: np.ndarray
    item_group: np.ndarray


def planted_groups(
    n_users: int = 400,
    n_groups: int = 4,
    items_per_group: int = 40,
    p_in: float = 0.3,
    p_out: float = 0.0,
    test_fraction=0.5,
    group_weights=None,
    seed: int = 0,
) -> PlantedData:
    """Users of type ``c`` interact with each item of group ``c`` with probability ``p_in``
    and with any other item with probability ``p_out``; each interaction is held out with
    probability ``test_fraction``.

    Args:
        n_users: number of users.
        n_groups: number of types / groups C.
        items_per_group: items per group m.
        p_in: within-group interaction probability.
        p_out: cross-group interaction probability.
        test_fraction: probability that an interaction goes to the test split; a float, or
            one value per user type (shape ``(n_groups,)``) to give types different activity.
        group_weights: probabilities of the user types (default uniform).
        seed: seed.

    Returns:
        A :class:`PlantedData`.

    Raises:
        ValueError: for probabilities outside [0, 1] or bad weights.
    """
    tf = np.broadcast_to(np.asarray(test_fraction, dtype=np.float64), (n_groups,))
    for name, v in (
        ("p_in", p_in),
        ("p_out", p_out),
        ("test_fraction", tf.min()),
        ("test_fraction", tf.max()),
    ):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1]; got {v}")
    w = np.full(n_groups, 1.0 / n_groups) if group_weights is None else np.asarray(group_weights)
    if w.shape != (n_groups,) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
        raise ValueError(f"group_weights must be {n_groups} probabilities summing to 1")
    rng = np.random.default_rng(seed)
    user_group = rng.choice(n_groups, size=n_users, p=w)
    item_group = np.repeat(np.arange(n_groups), items_per_group)
    prob = np.where(user_group[:, None] == item_group[None, :], p_in, p_out)
    inter = rng.random(prob.shape) < prob
    held = rng.random(prob.shape) < tf[user_group][:, None]
    train = sp.csr_matrix((inter & ~held).astype(np.float32))
    test = sp.csr_matrix((inter & held).astype(np.float32))
    return PlantedData(train, test, user_group, item_group)


def train_test_split(user_items, test_fraction: float = 0.2, *, seed: int = 0):
    """Hold out each interaction independently with probability ``test_fraction``.

    Args:
        user_items: sparse ``(n_users, n_items)``.
        test_fraction: hold-out probability.
        seed: seed.

    Returns:
        ``(train, test)`` CSR matrices with disjoint supports.

    Raises:
        ValueError: for ``test_fraction`` outside [0, 1].
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1]; got {test_fraction}")
    m = check_user_items(user_items).tocoo()
    held = np.random.default_rng(seed).random(m.nnz) < test_fraction

    def part(mask):
        return sp.csr_matrix((m.data[mask], (m.row[mask], m.col[mask])), shape=m.shape)

    return part(~held), part(held)
