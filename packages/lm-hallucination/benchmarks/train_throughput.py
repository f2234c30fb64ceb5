"""Training throughput and MFU: widelab's transformer vs a plain JAX + optax loop.

Tiny config of the issue: 2 layers, d_model = 128, 4 heads, context 64, batch 16.
Both loops use the same optimizer chain (clip + AdamW, warmup + cosine) and the same
FLOP count per token (6 N + 12 L d T); the peer is a hand-written transformer of the
same shape (token + position embedding, pre-norm blocks, no biases) in jax.numpy.

    uv run python packages/lm-hallucination/benchmarks/train_throughput.py [--steps 60]

MFU is against ``peak_flops()`` (CPU: cores x clock x 32 float32 FLOP/cycle; GPU:
dense bf16 tensor-core peak). Run it once: the machine may be shared.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from widelab_lm_hallucination import (
    FactStream,
    LMConfig,
    Tokenizer,
    TrainConfig,
    encode_kg,
    flops_per_token,
    make_kg,
    param_counts,
    peak_flops,
    train,
)
from widelab_lm_hallucination.train import make_optimizer


def plain_init(key, cfg: LMConfig):
    d, v, t, f = cfg.d_model, cfg.vocab_size, cfg.seq_len, cfg.mlp_ratio * cfg.d_model
    ks = iter(jax.random.split(key, 3 + 6 * cfg.n_layers))
    n = lambda shape, fan: jax.random.normal(next(ks), shape) / np.sqrt(fan)
    blocks = [
        {
            "q": n((d, d), d),
            "k": n((d, d), d),
            "v": n((d, d), d),
            "o": n((d, d), d),
            "w1": n((d, f), d),
            "w2": n((f, d), f),
        }
        for _ in range(cfg.n_layers)
    ]
    return {
        "tok": 0.02 * n((v, d), 1),
        "pos": 0.02 * n((t, d), 1),
        "blocks": blocks,
        "head": n((d, v), d),
    }


def _ln(x):
    m = x.mean(-1, keepdims=True)
    return (x - m) * jax.lax.rsqrt(((x - m) ** 2).mean(-1, keepdims=True) + 1e-12)


def plain_loss(params, rows, cfg: LMConfig):
    x, y = rows[:, :-1], rows[:, 1:]
    b, t = x.shape
    h = params["tok"][x] + params["pos"][None, :t]
    hd = cfg.d_model // cfg.n_heads
    causal = jnp.tril(jnp.ones((t, t), bool))[None, None]
    for p in params["blocks"]:
        z = _ln(h)
        q, k, v = (jnp.reshape(z @ p[w], (b, t, cfg.n_heads, hd)) for w in "qkv")
        a = jnp.einsum("bqhc,bkhc->bhqk", q, k) / np.sqrt(hd)
        a = jax.nn.softmax(jnp.where(causal, a, -1e30), -1)
        h = h + jnp.reshape(jnp.einsum("bhqk,bkhc->bqhc", a, v), (b, t, -1)) @ p["o"]
        h = h + jax.nn.gelu(_ln(h) @ p["w1"], approximate=True) @ p["w2"]
    logits = _ln(h) @ params["head"]
    logp = jax.nn.log_softmax(logits, -1)
    nll = -jnp.take_along_axis(logp, y[..., None], -1)[..., 0]
    w = (y != 0).astype(jnp.float32)
    return (nll * w).sum() / jnp.maximum(w.sum(), 1.0)


def bench_plain(cfg, tc, batches, steps):
    opt = make_optimizer(tc)
    params = plain_init(jax.random.key(0), cfg)
    state = opt.init(params)

    @jax.jit
    def step(params, state, rows):
        loss, g = jax.value_and_grad(plain_loss)(params, rows, cfg)
        u, state = opt.update(g, state, params)
        return optax.apply_updates(params, u), state, loss

    params, state, loss = step(params, state, batches[0])
    loss.block_until_ready()
    t0 = time.perf_counter()
    for i in range(steps):
        params, state, loss = step(params, state, batches[(i + 1) % len(batches)])
    loss.block_until_ready()
    return steps * tc.batch_size * cfg.seq_len / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    kg = make_kg(400, seed=0)
    tok = Tokenizer.fit(kg.triples)
    cfg = LMConfig(tok.vocab_size, d_model=128, n_layers=2, n_heads=4, seq_len=64)
    tc = TrainConfig(steps=args.steps + 1, batch_size=args.batch_size, log_every=10**9)
    stream = FactStream(encode_kg(tok, kg), cfg.seq_len, tc.batch_size)
    peak, fpt = peak_flops(), flops_per_token(cfg)
    dev = jax.devices()[0]
    print(f"device: {dev.platform} {dev.device_kind}; peak {peak:.3g} FLOP/s")
    print(
        f"config: L=2 d=128 T=64 batch={tc.batch_size}; non-embedding params "
        f"{param_counts(cfg)['non_embedding']:,}; {fpt:.3g} FLOP/token"
    )
    res = train(cfg, tc, stream)  # first step (compile) excluded from its figures
    cursor, batches = (0, 0), []
    for _ in range(8):
        b, cursor = stream.next_batch(cursor)
        batches.append(jnp.asarray(b))
    plain = bench_plain(cfg, tc, batches, args.steps)
    print(f"widelab lm train():  {res.tokens_per_s:10.0f} tokens/s  MFU {res.mfu:7.2%}")
    print(f"plain JAX + optax:   {plain:10.0f} tokens/s  MFU {plain * fpt / peak:7.2%}")


if __name__ == "__main__":
    main()
