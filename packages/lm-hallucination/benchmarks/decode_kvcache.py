"""Decoding speed: key-value-cache decoding vs full recompute, at context 64.

Tiny config (2 layers, d_model = 128, 4 heads, context 64), random parameters,
``--batch`` prompts of 8 to 16 random tokens, ``--new`` generated tokens each, greedy
and sampled. Both decoders are compiled first, then timed (best of ``--repeats``);
the script also checks that they write identical tokens.

    uv run python packages/lm-hallucination/benchmarks/decode_kvcache.py [--batch 64 --new 48]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from widelab_lm_hallucination import LMConfig, init_lm
from widelab_lm_hallucination.hallucination import _decode_full
from widelab_lm_hallucination.kvcache import decode_cached


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--new", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--d-model", type=int, default=128)
    args = ap.parse_args()
    cfg = LMConfig(40, d_model=args.d_model, n_layers=2, n_heads=4, seq_len=64)
    params = init_lm(cfg, jax.random.key(0))
    rng = np.random.default_rng(0)
    plen = rng.integers(8, 17, args.batch).astype(np.int32)
    buf = np.zeros((args.batch, cfg.seq_len), np.int32)
    for i, n in enumerate(plen):
        buf[i, :n] = rng.integers(5, cfg.vocab_size, n)
    buf, pos = jnp.asarray(buf), jnp.asarray(plen)
    print(f"batch {args.batch}, context {cfg.seq_len}, {args.new} new tokens, d={cfg.d_model}")
    for greedy in (True, False):
        times, outs = {}, {}
        for name, fn in (("kv cache", decode_cached), ("full recompute", _decode_full)):
            call = (cfg, params, buf, pos, args.new, greedy, 0, jax.random.key(1), 1.0, 1.0)
            run = lambda fn=fn, call=call: fn(*call).block_until_ready()  # noqa: E731
            outs[name] = np.asarray(run())  # compile
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - t0)
            times[name] = best
        same = np.array_equal(outs["kv cache"], outs["full recompute"])
        toks = args.batch * args.new
        print(
            f"{'greedy' if greedy else 'sampled'}: kv cache {times['kv cache'] * 1e3:.1f} ms "
            f"({toks / times['kv cache']:.0f} tokens/s), full recompute "
            f"{times['full recompute'] * 1e3:.1f} ms ({toks / times['full recompute']:.0f} "
            f"tokens/s): {times['full recompute'] / times['kv cache']:.1f}x; "
            f"identical tokens: {same}"
        )


if __name__ == "__main__":
    main()
