"""Training-free hallucination scores from the LM's own likelihood, and the AUROC's
standard error.

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
