"""Batched decoding of objects and the exact-match hallucination rate.

For a query ``(subject, relation)`` the model is prompted with
``<S> subject <P> relation <O>`` and generates until ``<EOS>``. The output is a
hallucination when the generated name is not among the graph's valid objects for the
query (Hron et al. 2024, Sec. 2.2); an unfinished or malformed generation counts as
one. Rates come with percentile-bootstrap intervals over queries (Efron & Tibshirani
1993, Ch. 13).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .corpus import Tokenizer
from .kg import KnowledgeGraph, Query
from .kvcache import choose, decode_cached
from .model import LMConfig, logits_fn


@dataclasses.dataclass(frozen=True)
class Generations:
    """Decoded outputs for a list of queries (one row per query and sample).

    Attributes:
        queries: the query of each row.
        objects: generated object names.
        finished: whether ``<EOS>`` ended the name.
        tokens: ``(rows, width)`` prompt plus generation, ``<PAD>`` after the end.
        prompt_len: prompt length of each row (the generation starts there).
    """

    queries: tuple[Query, ...]
    objects: tuple[str, ...]
    finished: np.ndarray
    tokens: np.ndarray
    prompt_len: np.ndarray


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 9))
def _decode_full(cfg, params, buf, pos, n_new, greedy, top_k, key, temperature, top_p):
    """Reference decoder: the whole network over the whole buffer for every token."""
    rows = jnp.arange(buf.shape[0])

    def body(i, carry):
        buf, pos, done, key = carry
        logits = logits_fn(cfg, params, buf)
        last = logits[rows, jnp.clip(pos - 1, 0, buf.shape[1] - 1)]
        key, sub = jax.random.split(key)
        nxt = choose(last, greedy, sub, temperature, top_k, top_p)
        write = (~done) & (pos < buf.shape[1])
        cur = buf[rows, jnp.clip(pos, 0, buf.shape[1] - 1)]
        buf = buf.at[rows, jnp.clip(pos, 0, buf.shape[1] - 1)].set(
            jnp.where(write, nxt.astype(buf.dtype), cur)
        )
        done = done | (write & (nxt == 4)) | (pos >= buf.shape[1] - 1)
        pos = pos + write.astype(pos.dtype)
        return buf, pos, done, key

    done0 = jnp.zeros(buf.shape[0], bool)
    buf, _, _, _ = jax.lax.fori_loop(0, n_new, body, (buf, pos, done0, key))
    return buf


def generate(
    cfg: LMConfig,
    params,
    tok: Tokenizer,
    queries: Sequence[Query],
    *,
    greedy: bool = True,
    n_samples: int = 1,
    temperature: float = 1.0,
    key: jax.Array | None = None,
    max_new: int | None = None,
    batch_size: int = 256,
    top_k: int = 0,
    top_p: float = 1.0,
    kv_cache: bool = True,
) -> Generations:
    """Generate objects for ``queries`` in batches (greedy or sampled).

    Args:
        cfg: model shape.
        params: model parameters.
        tok: tokenizer.
        queries: ``(subject, relation)`` pairs.
        greedy: argmax decoding; otherwise sample at ``temperature``.
        n_samples: samples per query (rows are query-major).
        temperature: sampling temperature.
        key: PRNG key for sampling (required when ``greedy`` is False).
        max_new: most tokens generated per query (``<EOS>`` included); default: as
            many as the context leaves after the longest prompt. Pass
            :func:`decode_budget` of the graph to stop early.
        batch_size: rows per compiled batch (the last batch is padded).
        top_k: sample only among the ``top_k`` most likely tokens (0: all).
        top_p: sample only within the nucleus of probability mass ``top_p``
            (Holtzman et al. 2020; 1: all).
        kv_cache: decode incrementally with a key-value cache (False: recompute the
            whole buffer for every token; same outputs, much slower).

    Returns:
        :class:`Generations` with ``len(queries) * n_samples`` rows.

    Raises:
        ValueError: no queries, sampling without a key, a prompt longer than the context.
        UnknownTokenError: a query with characters or a relation the tokenizer lacks.
    """
    if len(queries) == 0:
        raise ValueError("generate: no queries")
    if not greedy and key is None:
        raise ValueError("generate: sampling needs a PRNG key")
    if not greedy and not temperature > 0:
        raise ValueError(f"generate: temperature must be positive, got {temperature}")
    if top_k < 0:
        raise ValueError(f"generate: top_k must be >= 0, got {top_k}")
    if not 0 < top_p <= 1:
        raise ValueError(f"generate: top_p must be in (0, 1], got {top_p}")
    rows_q = [q for q in queries for _ in range(n_samples)]
    prompts = [tok.encode_fact(s, r) for s, r in rows_q]
    longest = max(len(p) for p in prompts)
    if longest >= cfg.seq_len:
        raise ValueError(f"a prompt has {longest} tokens; the model context is {cfg.seq_len}")
    if max_new is None:
        max_new = cfg.seq_len - longest
    if max_new < 1:
        raise ValueError(f"generate: max_new must be >= 1, got {max_new}")
    width = min(cfg.seq_len, -(-(longest + max_new) // 16) * 16)
    n_new = min(max_new, width - 1)
    buf = np.zeros((len(prompts), width), np.int32)
    plen = np.zeros(len(prompts), np.int32)
    for i, p in enumerate(prompts):
        buf[i, : len(p)] = p
        plen[i] = len(p)
    bs = min(batch_size, max(64, 1 << (len(prompts) - 1).bit_length()))  # few compiles
    n_pad = -len(prompts) % bs
    buf_p = np.concatenate([buf, np.repeat(buf[:1], n_pad, 0)])
    pos_p = np.concatenate([plen, np.repeat(plen[:1], n_pad)])
    key = jax.random.key(0) if key is None else key
    out = []
    decode = decode_cached if kv_cache else _decode_full
    for b in range(0, len(buf_p), bs):
        key, sub = jax.random.split(key)
        o = decode(
            cfg,
            params,
            jnp.asarray(buf_p[b : b + bs]),
            jnp.asarray(pos_p[b : b + bs]),
            n_new,
            bool(greedy),
            int(top_k),
            sub,
            jnp.float32(temperature),
            float(top_p),
        )
        out.append(np.asarray(o))
    toks = np.concatenate(out)[: len(prompts)]
    objs, fin = [], []
    for i in range(len(prompts)):
        name, ok = tok.decode_object(toks[i, plen[i] :])
        objs.append(name)
        fin.append(ok)
        end = plen[i] + len(name) + (1 if ok else 0)
        toks[i, end:] = 0
    return Generations(tuple(rows_q), tuple(objs), np.asarray(fin), toks, plen)


def decode_budget(tok: Tokenizer, kg: KnowledgeGraph, margin: int = 2) -> int:
    """Tokens to generate so that every object of ``kg`` fits: the longest object name
    in tokens, plus ``<EOS>``, plus ``margin``.

    Example:
        >>> from widelab_lm_hallucination import KnowledgeGraph, Tokenizer
        >>> mit = "Massachusetts Institute of Technology"
        >>> kg = KnowledgeGraph.from_triples([("Ann", "studied at", mit)])
        >>> decode_budget(Tokenizer.fit(kg.triples), kg)
        40

    Raises:
        ValueError: a negative ``margin``.
    """
    if margin < 0:
        raise ValueError(f"decode_budget: margin must be >= 0, got {margin}")
    return max(len(tok.encode_name(o)) for _, _, o in kg.triples) + 1 + margin


def is_hallucination(
    kg: KnowledgeGraph, queries: Sequence[Query], objects: Sequence[str], finished=None
) -> np.ndarray:
    """Boolean per output: the object is not a valid object of its query.

    Args:
        kg: the full graph (ground truth).
        queries: ``(subject, relation)`` per output.
        objects: generated names per output.
        finished: optional per-output flag; unfinished outputs count as hallucinations.

    Returns:
        ``bool`` array, True where the output is a hallucination.
    """
    if len(queries) != len(objects):
        raise ValueError(f"{len(queries)} queries but {len(objects)} objects")
    h = np.array([not kg.is_valid(s, r, o) for (s, r), o in zip(queries, objects)], bool)
    if finished is not None:
        h |= ~np.asarray(finished, bool)
    return h


def bootstrap_ci(
    values: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean, resampling whole groups (queries).

    Args:
        values: per-output 0/1 (or real) values.
        groups: group id per value (samples of one query form a group); None: each
            value is its own group.
        n_boot: bootstrap replicates.
        level: coverage of the interval.
        seed: resampling seed.

    Returns:
        ``(low, high)``.
    """
    v = np.asarray(values, np.float64)
    if v.size == 0:
        raise ValueError("bootstrap_ci: no values")
    if groups is None:
        groups = np.arange(v.size)
    uniq, inv = np.unique(groups, return_inverse=True)
    sums = np.bincount(inv, weights=v)
    counts = np.bincount(inv).astype(np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
    means = sums[idx].sum(1) / counts[idx].sum(1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


@dataclasses.dataclass(frozen=True)
class RateEstimate:
    """A hallucination rate with its bootstrap interval."""

    rate: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict:
        """Plain dict (for JSON)."""
        return dataclasses.asdict(self)


def hallucination_rate(
    cfg: LMConfig,
    params,
    tok: Tokenizer,
    kg: KnowledgeGraph,
    queries: Sequence[Query],
    *,
    greedy: bool = True,
    n_samples: int = 1,
    temperature: float = 1.0,
    key: jax.Array | None = None,
    n_boot: int = 1000,
    max_new: int | None = None,
) -> tuple[RateEstimate, Generations]:
    """Share of generated objects that are not valid for their query, with a 95% CI.

    Args:
        cfg, params, tok: the model and its tokenizer.
        kg: the full graph (ground truth).
        queries: ``(subject, relation)`` pairs to ask.
        greedy, n_samples, temperature, key: decoding (see :func:`generate`).
        n_boot: bootstrap replicates of the interval.
        max_new: most generated tokens per query; default :func:`decode_budget` of
            ``kg`` (the longest valid object plus ``<EOS>`` and a margin), so any
            valid object can be produced in full and a longer output is an
            (unfinished) hallucination either way.

    Returns:
        ``(estimate, generations)``.
    """
    if max_new is None:
        max_new = decode_budget(tok, kg)
    gen = generate(
        cfg,
        params,
        tok,
        queries,
        greedy=greedy,
        n_samples=n_samples,
        temperature=temperature,
        key=key,
        max_new=max_new,
    )
    h = is_hallucination(kg, gen.queries, gen.objects, gen.finished)
    groups = np.repeat(np.arange(len(queries)), n_samples)
    lo, hi = bootstrap_ci(h, groups=groups, n_boot=n_boot)
    return RateEstimate(float(h.mean()), lo, hi, int(h.size)), gen


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` correct (Chen et al. 2021, Eq. 1):
    ``1 - C(n - c, k) / C(n, k)``."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))
