"""Incremental decoding with a key-value cache, and the next-token choice rules.

Full-recompute decoding runs the whole transformer over the whole buffer for every
generated token (``O(T^2)`` token-layers per sequence). With a cache, a prefill pass
stores every layer's keys and values for the prompt, and each later step runs one
token through the network, attending to the cached keys and values (``O(T)`` per
sequence). The arithmetic is that of :func:`widelab_lm_hallucination.transformer`
(core's ``GlobalSelfAttention`` with independent query weights, logits scaled by
``1 / (d_model sqrt(head_dim))``, output by ``1 / sqrt(head_dim n_heads d_model)``;
``LayerNorm`` without parameters; standard-parameterised ``Dense`` without bias), read
from the same parameter pytree; tests check equal outputs against full recompute.

Sampling rules: temperature, top-k (Fan et al. 2018) and nucleus / top-p (Holtzman et
al. 2020, Eq. 2: the smallest set of tokens whose probability reaches ``p``).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from .model import LMConfig

EOS_ID = 4


def _blocks(cfg: LMConfig, params):
    """``(embedding, stacked block weights, head W)`` from the transformer's params."""
    body, head = params
    emb = body[0]
    if cfg.n_layers <= 4:
        blocks = body[1 : 1 + cfg.n_layers]
        pick = lambda f: jnp.stack([f(b) for b in blocks])
    else:
        pick = lambda f: f(body[1])  # repeat stacks the block parameters already
    w = {
        "q": pick(lambda b: b[1][0][1]["W_query"]),
        "k": pick(lambda b: b[1][0][1]["W_key"]),
        "v": pick(lambda b: b[1][0][1]["W_value"]),
        "o": pick(lambda b: b[1][0][1]["W_out"]),
        "w1": pick(lambda b: b[4][0][1]["W"]),
        "w2": pick(lambda b: b[4][0][3]["W"]),
    }
    return emb, w, head["W"]


def _ln(x):
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-12)


def _scales(cfg: LMConfig):
    hd = cfg.d_model // cfg.n_heads
    logit = 1.0 / (cfg.d_model * math.sqrt(hd))
    out = 1.0 / math.sqrt(hd * cfg.n_heads * cfg.d_model)
    return logit, out


def _prefill(cfg: LMConfig, emb, w, head, buf):
    """Full forward over ``buf (B, T)``: logits ``(B, T, V)`` and caches
    ``(L, B, H, T, hd)`` of keys and values."""
    t = buf.shape[1]
    logit_s, out_s = _scales(cfg)
    x = jnp.take(emb["tok"], buf, axis=0) + emb["pos"][None, :t]
    causal = jnp.arange(t)[None, :] > jnp.arange(t)[:, None]

    def layer(x, lw):
        h = _ln(x)
        q = jnp.einsum("btd,hdk->bhtk", h, lw["q"])
        k = jnp.einsum("btd,hdk->bhtk", h, lw["k"])
        v = jnp.einsum("btd,hdk->bhtk", h, lw["v"])
        a = jnp.einsum("bhqk,bhsk->bhqs", q, k) * logit_s
        a = jax.nn.softmax(jnp.where(causal[None, None], jnp.finfo(a.dtype).min, a), axis=-1)
        y = jnp.einsum("bhqs,bhsv->bqhv", a, v).reshape(x.shape[0], t, -1)
        x = x + (y @ lw["o"]) * out_s
        x = x + jax.nn.gelu(_ln(x) @ lw["w1"], approximate=True) @ lw["w2"]
        return x, (k, v)

    x, (ks, vs) = jax.lax.scan(layer, x, w)
    return _ln(x) @ head, ks, vs


def _step(cfg: LMConfig, emb, w, head, tok, pos, ks, vs):
    """One token per row (``tok``, ``pos``: ``(B,)``) through the network; writes its
    keys and values at ``pos`` and returns next-token logits ``(B, V)``."""
    logit_s, out_s = _scales(cfg)
    t = ks.shape[3]
    x = jnp.take(emb["tok"], tok, axis=0) + jnp.take(emb["pos"], pos, axis=0)  # (B, d)
    hidden = jnp.arange(t)[None, :] > pos[:, None]  # keys after the token: (B, T)
    onehot = (jnp.arange(t)[None, :] == pos[:, None]).astype(x.dtype)  # (B, T)

    def layer(x, inputs):
        lw, kc, vc = inputs
        h = _ln(x)
        q = jnp.einsum("bd,hdk->bhk", h, lw["q"])
        k = jnp.einsum("bd,hdk->bhk", h, lw["k"])
        v = jnp.einsum("bd,hdk->bhk", h, lw["v"])
        sel = onehot[:, None, :, None]
        kc = kc * (1 - sel) + k[:, :, None, :] * sel
        vc = vc * (1 - sel) + v[:, :, None, :] * sel
        a = jnp.einsum("bhk,bhsk->bhs", q, kc) * logit_s
        a = jax.nn.softmax(jnp.where(hidden[:, None, :], jnp.finfo(a.dtype).min, a), axis=-1)
        y = jnp.einsum("bhs,bhsv->bhv", a, vc).reshape(x.shape[0], -1)
        x = x + (y @ lw["o"]) * out_s
        x = x + jax.nn.gelu(_ln(x) @ lw["w1"], approximate=True) @ lw["w2"]
        return x, (kc, vc)

    x, (ks, vs) = jax.lax.scan(layer, x, (w, ks, vs))
    return _ln(x) @ head, ks, vs


def choose(logits, greedy: bool, key, temperature, top_k: int = 0, top_p: float = 1.0):
    """Next tokens from ``logits (B, V)``: argmax, or a sample at ``temperature`` from
    the ``top_k`` most likely tokens (0: all) within the nucleus of mass ``top_p``
    (Holtzman et al. 2020, Eq. 2; the most likely token is always kept)."""
    if greedy:
        return jnp.argmax(logits, axis=-1)
    z = logits / temperature
    if top_k:
        kth = jax.lax.top_k(z, top_k)[0][:, -1:]
        z = jnp.where(z < kth, -jnp.inf, z)
    if top_p < 1.0:
        srt = jnp.sort(z, axis=-1)[:, ::-1]
        probs = jax.nn.softmax(srt, axis=-1)
        before = jnp.cumsum(probs, axis=-1) - probs  # mass of strictly likelier tokens
        keep = before < top_p
        cut = jnp.min(jnp.where(keep, srt, jnp.inf), axis=-1, keepdims=True)
        z = jnp.where(z < cut, -jnp.inf, z)
    return jax.random.categorical(key, z, axis=-1)


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 9))
def decode_cached(cfg, params, buf, pos, n_new, greedy, top_k, key, temperature, top_p):
    """Write up to ``n_new`` generated tokens into ``buf (B, T)`` from positions ``pos``
    (the first free position of each row), stopping rows at ``<EOS>`` or the buffer's
    end. One prefill pass, then one cached token step per generated token."""
    emb, w, head = _blocks(cfg, params)
    rows = jnp.arange(buf.shape[0])
    t = buf.shape[1]
    logits, ks, vs = _prefill(cfg, emb, w, head, buf)
    last = logits[rows, jnp.clip(pos - 1, 0, t - 1)]

    def body(i, carry):
        buf, pos, done, key, last, ks, vs = carry
        key, sub = jax.random.split(key)
        nxt = choose(last, greedy, sub, temperature, top_k, top_p).astype(buf.dtype)
        write = (~done) & (pos < t)
        at = jnp.clip(pos, 0, t - 1)
        buf = buf.at[rows, at].set(jnp.where(write, nxt, buf[rows, at]))
        done = done | (write & (nxt == EOS_ID)) | (pos >= t - 1)
        last, ks, vs = _step(cfg, emb, w, head, buf[rows, at], at, ks, vs)
        pos = pos + write.astype(pos.dtype)
        return buf, pos, done, key, last, ks, vs

    done0 = jnp.zeros(buf.shape[0], bool)
    carry = (buf, pos, done0, key, last, ks, vs)
    return jax.lax.fori_loop(0, n_new, body, carry)[0]
