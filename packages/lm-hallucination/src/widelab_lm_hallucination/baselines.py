"""Training-free hallucination scores from the LM's own likelihood, and the AUROC's
standard error and bootstrap interval.

Hron et al. (2024, Sec. 4) compare trained detectors with the LM's own uncertainty.
For a generated object ``o = (o_1, ..., o_m, <EOS>)`` after prompt ``x``:

* object negative log-likelihood ``-sum_j log p(o_j | x, o_<j)`` (higher: more likely
  a hallucination);
* mean token entropy ``(1 / (m + 1)) sum_j H(p(. | x, o_<j))`` over the same positions.

Both need no labels, so they are the baselines a trained detector has to beat.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .hallucination import Generations
from .model import LMConfig, logits_fn


@functools.partial(jax.jit, static_argnums=0)
def _nll_entropy(cfg, params, tokens, start, stop):
    logp = jax.nn.log_softmax(logits_fn(cfg, params, tokens[:, :-1]).astype(jnp.float32), -1)
    target = tokens[:, 1:]
    nll = -jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
    ent = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
    j = jnp.arange(target.shape[1])[None, :] + 1  # position of each target token
    w = ((j >= start[:, None]) & (j < stop[:, None])).astype(jnp.float32)
    n = jnp.maximum(jnp.sum(w, axis=1), 1.0)
    return jnp.sum(nll * w, axis=1), jnp.sum(ent * w, axis=1) / n


def likelihood_scores(cfg: LMConfig, params, gen: Generations) -> dict[str, np.ndarray]:
    """Object negative log-likelihood and mean token entropy of each generation.

    Args:
        cfg: model shape.
        params: the LM's parameters (the model that generated ``gen`` or another).
        gen: generations (tokens hold prompt and object, ``<PAD>`` after it).

    Returns:
        ``{"object_nll": (rows,), "token_entropy": (rows,)}``; higher scores mean a
        hallucination is more likely.

    Example:
        >>> # scores = likelihood_scores(cfg, params, gen); auroc(labels, scores["object_nll"])
    """
    start = np.asarray(gen.prompt_len, np.int32)
    lengths = np.array([len(o) for o in gen.objects], np.int32) + gen.finished.astype(np.int32)
    stop = start + np.maximum(lengths, 1)
    nll, ent = _nll_entropy(
        cfg, params, jnp.asarray(gen.tokens), jnp.asarray(start), jnp.asarray(stop)
    )
    return {"object_nll": np.asarray(nll), "token_entropy": np.asarray(ent)}


def auroc_standard_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUROC estimate (Hanley & McNeil 1982, Eq. 2):

    ``SE^2 = [A(1-A) + (n_pos-1)(Q1-A^2) + (n_neg-1)(Q2-A^2)] / (n_pos n_neg)`` with
    ``Q1 = A / (2 - A)``, ``Q2 = 2A^2 / (1 + A)``. At ``A = 0.5`` this is the null
    standard error ``sqrt((n_pos + n_neg + 1) / (12 n_pos n_neg))``.

    Example:
        >>> round(auroc_standard_error(0.5, 50, 50), 4)
        0.058

    Raises:
        ValueError: ``auc`` outside ``[0, 1]`` or an empty class.
    """
    if not 0.0 <= auc <= 1.0 or n_pos < 1 or n_neg < 1:
        raise ValueError(
            f"auroc_standard_error needs 0 <= auc <= 1 and both classes non-empty, got "
            f"auc={auc}, n_pos={n_pos}, n_neg={n_neg}"
        )
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)
    return math.sqrt(max(var, 0.0) / (n_pos * n_neg))


class AurocInterval(NamedTuple):
    """Percentile bootstrap interval of an AUROC and the bootstrap standard error."""

    low: float
    high: float
    se: float


def auroc_bootstrap_interval(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> AurocInterval:
    """Percentile bootstrap interval of the AUROC (Efron & Tibshirani 1993, Ch. 13,
    Eq. 13.5: ``[A*_(alpha/2), A*_(1 - alpha/2)]``, the quantiles of the bootstrap
    replicates ``A*``), stratified by class or clustered by group.

    Without ``groups`` each replicate resamples the positives and the negatives
    separately, with replacement and at their own sizes, so every replicate holds both
    classes. With ``groups`` (e.g. the query of each scored token) a replicate draws
    whole groups with replacement, as many as there are, and keeps every row of a drawn
    group (the cluster bootstrap, Davison & Hinkley 1997, Sec. 3.8): rows of one group
    are not independent (tokens of one generation, samples of one query), and
    resampling rows one by one then understates the spread. Replicates that draw no
    positive or no negative are dropped.

    A replicate's AUROC is the Mann-Whitney statistic with mid-ranks for ties (Hanley &
    McNeil 1982, Eq. 2) with each row weighted by its number of draws ``w``:
    ``A* = sum_i w_i [W(neg < s_i) + W(neg = s_i) / 2] / (W_pos W_neg)``, where ``W``
    sums negative weights and ``W_pos``, ``W_neg`` are the replicate's class totals; all
    replicates are computed at once from multinomial draw counts and cumulative sums over
    the sorted negatives (memory ``n_boot * (n_pos + n_neg)``). The bootstrap standard
    error (sd of the ``A*``, Efron & Tibshirani 1993, Eq. 6.6) is comparable with the
    analytic :func:`auroc_standard_error` (which assumes independent rows).

    Args:
        labels: True for positives (hallucinations).
        scores: detector scores (higher: more likely positive), same length.
        groups: optional group id of each row (same length): resample whole groups.
        level: coverage of the interval, in ``(0, 1)``.
        n_boot: number of bootstrap replicates, at least 1 (the standard error needs 2).
        seed: seed of the resampling.

    Returns:
        ``AurocInterval(low, high, se)``; ``se`` is NaN when fewer than two replicates
        remain (all NaN when none does).

    Raises:
        ValueError: labels of a single class, mismatched lengths, ``level`` outside
            ``(0, 1)`` or ``n_boot < 1``.

    Example:
        >>> y = np.r_[np.ones(50, bool), np.zeros(50, bool)]
        >>> s = np.r_[np.random.default_rng(0).normal(1, 1, 50), np.zeros(50)]
        >>> low, high, se = auroc_bootstrap_interval(y, s, level=0.9, n_boot=200)
        >>> bool(low <= 0.84 <= high) and 0 < se < 0.1
        True
        >>> q = np.arange(100) % 25  # four rows per query
        >>> low, high, se = auroc_bootstrap_interval(y, s, groups=q, level=0.9, n_boot=200)
        >>> bool(low <= 0.84 <= high)
        True
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"auroc_bootstrap_interval: level must be in (0, 1), got {level!r}")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(
            f"auroc_bootstrap_interval: n_boot must be an integer >= 1, got {n_boot!r}"
        )
    y = np.asarray(labels, bool).ravel()
    s = np.asarray(scores, np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"auroc_bootstrap_interval: {y.size} labels but {s.size} scores")
    if y.all() or not y.any():
        raise ValueError(
            "auroc_bootstrap_interval needs both positive and negative labels, got "
            f"{int(y.sum())} positives of {y.size}"
        )
    n_boot = int(n_boot)
    rng = np.random.default_rng(seed)
    order = np.argsort(s[~y], kind="stable")
    pos, neg = s[y], s[~y][order]
    n_pos, n_neg = pos.size, neg.size
    if groups is None:
        w_pos = rng.multinomial(n_pos, np.full(n_pos, 1.0 / n_pos), size=n_boot)
        w_neg = rng.multinomial(n_neg, np.full(n_neg, 1.0 / n_neg), size=n_boot)
    else:
        g = np.asarray(groups).ravel()
        if g.shape != y.shape:
            raise ValueError(f"auroc_bootstrap_interval: {y.size} labels but {g.size} groups")
        _, inv = np.unique(g, return_inverse=True)
        n_groups = int(inv.max()) + 1
        draws = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
        w_pos, w_neg = draws[:, inv[y]], draws[:, inv[~y]][:, order]
    # cum[b, k]: weight of replicate b on the k smallest negatives
    cum = np.zeros((n_boot, n_neg + 1))
    np.cumsum(w_neg, axis=1, out=cum[:, 1:])
    lo = np.searchsorted(neg, pos, side="left")  # negatives strictly below each positive
    hi = np.searchsorted(neg, pos, side="right")  # ... below or tied
    wins = 0.5 * (cum[:, lo] + cum[:, hi])  # below + tied / 2
    pairs = w_pos.sum(1).astype(np.float64) * cum[:, -1]
    ok = pairs > 0
    boot = np.einsum("bi,bi->b", w_pos[ok], wins[ok]) / pairs[ok]
    if boot.size == 0:
        return AurocInterval(float("nan"), float("nan"), float("nan"))
    alpha = 1.0 - level
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    se = float(np.std(boot, ddof=1)) if boot.size > 1 else float("nan")
    return AurocInterval(float(low), float(high), se)
