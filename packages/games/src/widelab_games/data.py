"""Rating data for the audit, from core's readers and synthetic generators.

The audit needs a sparse ``(users, items)`` rating matrix, a binary user group (the paper
slices by gender on MovieLens and LastFM) and creator (item) groups. This module turns
:class:`widelab_core.datasets.InteractionData` (MovieLens-100K/1M, LastFM-360K or their
seeded synthetic look-alikes) into :class:`RatingData`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

SOURCES = ("synthetic", "synthetic-lastfm", "movielens", "lastfm")


@dataclasses.dataclass(frozen=True)
class RatingData:
    """Ratings plus the group labels the audit slices by.

    Attributes:
        ratings: ``(n_users, n_items)`` CSR matrix of observed ratings (no empty rows or
            columns).
        user_groups: ``(n_users,)`` integer labels (0 = male, 1 = female, -1 = unknown)
            or None.
        item_groups: ``(n_items,)`` integer creator-group labels (-1 = unknown) or None.
        user_group_names: names of the user-group labels ``0, 1, ...``.
        item_group_names: names of the item-group labels ``0, 1, ...``.
        name: a short description of the source.
    """

    ratings: sp.csr_matrix
    user_groups: np.ndarray | None = None
    item_groups: np.ndarray | None = None
    user_group_names: tuple[str, ...] = ()
    item_group_names: tuple[str, ...] = ()
    name: str = "ratings"


def from_interactions(data, *, log_plays: bool | None = None) -> RatingData:
    """Turn core's :class:`~widelab_core.datasets.InteractionData` into :class:`RatingData`.

    Users and items without interactions are dropped. User groups come from the
    ``gender`` attribute (``"M"`` -> 0, ``"F"`` -> 1, anything else -> -1). Creator groups
    are the first genre flag (MovieLens), else the planted ``cluster`` (synthetic), else
    item popularity terciles by interaction count (LastFM, which has no creator
    attributes). LastFM play counts become ratings ``log(1 + plays)``.

    Args:
        data: an ``InteractionData``.
        log_plays: use ``log1p`` of the values; default: when the values are not 1-5
            ratings.

    Returns:
        A :class:`RatingData`.

    Raises:
        ValueError: no interactions.
    """
    m = sp.csr_matrix(data.matrix, dtype=np.float64)
    rows = np.flatnonzero(np.diff(m.indptr) > 0)
    cols = np.flatnonzero(np.bincount(m.indices, minlength=m.shape[1]) > 0)
    if rows.size == 0:
        raise ValueError(f"{data.meta.get('source', 'data')}: no interactions")
    m = m[rows][:, cols].tocsr()
    if log_plays is None:
        log_plays = bool(m.data.max() > 5 or (m.data != np.rint(m.data)).any())
    if log_plays:
        m.data = np.log1p(m.data)
    ug = None
    if "gender" in data.user_attributes:
        gender = np.asarray(data.user_attributes["gender"])[rows]
        ug = np.where(gender == "M", 0, np.where(gender == "F", 1, -1)).astype(np.int64)
    ia = data.item_attributes
    if "genres" in ia:
        flags = np.asarray(ia["genres"])[cols]
        ig = np.where(flags.any(axis=1), np.argmax(flags, axis=1), -1).astype(np.int64)
        inames = tuple(data.meta.get("genre_names", ()))
        what = "first genre"
    elif "cluster" in ia:
        ig = np.asarray(ia["cluster"])[cols].astype(np.int64)
        inames = tuple(f"cluster {k}" for k in range(int(ig.max()) + 1))
        what = "planted cluster"
    else:
        counts = np.bincount(m.indices, minlength=m.shape[1])
        cuts = np.quantile(counts, [1 / 3, 2 / 3])
        ig = np.searchsorted(cuts, counts, side="right").astype(np.int64)
        inames = ("niche", "middle", "popular")
        what = "popularity tercile"
    source = data.meta.get("source", "interaction data")
    return RatingData(
        m,
        ug,
        ig,
        ("male", "female"),
        inames,
        name=f"{source}; creator groups: {what}" + ("; ratings log(1 + plays)" * log_plays),
    )


def load_ratings(source: str = "synthetic", path=None, *, seed: int = 0, size=None) -> RatingData:
    """Load rating data by name.

    Args:
        source: ``"synthetic"`` (core's MovieLens-like generator), ``"synthetic-lastfm"``,
            ``"movielens"`` (100K or 1M folder at ``path``) or ``"lastfm"`` (LastFM-360K
            folder or plays file at ``path``).
        path: the data folder for the real formats.
        seed: seed of the synthetic generators.
        size: ``(n_users, n_items)`` of the synthetic sets (default 300 x 200).

    Returns:
        A :class:`RatingData`.

    Raises:
        ValueError: unknown source or a real format without ``path``.
    """
    from widelab_core import datasets as ds

    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}; got {source!r}")
    nu, ni = size or (300, 200)
    if source == "synthetic":
        raw = ds.synthetic_movielens(nu, ni, seed=seed)
    elif source == "synthetic-lastfm":
        raw = ds.synthetic_lastfm(nu, ni, n_interactions=min(20 * nu, nu * ni // 2), seed=seed)
    else:
        if path is None:
            raise ValueError(f"source {source!r} needs a path to the unpacked data")
        raw = ds.read_movielens(path) if source == "movielens" else ds.read_lastfm_360k(path)
    return from_interactions(raw)
