"""Training throughput (tokens/s, MFU) of ``train()`` with float32 and bfloat16 compute.

Both runs use the same model, data, optimizer and steps; ``compute_dtype="bfloat16"``
casts the parameters inside the loss (float32 master weights, Micikevicius et al.
2018). The figures printed are each run's own tokens/s after its first (compiling)
step, their ratio and the final losses (which differ by bfloat16 rounding only).
``--data-parallel`` splits each batch over all local devices in both runs.

    uv run python packages/lm-hallucination/benchmarks/train_precision.py \\
        [--d-model 128 --layers 2 --steps 60 --batch-size 16 --data-parallel]

On CPUs without native bfloat16 arithmetic the bfloat16 run is usually slower (XLA
emulates it); the speed-up is a property of accelerators with bfloat16 units. MFU is
against ``peak_flops()``. Run it once: the machine may be shared.
"""

from __future__ import annotations

import argparse
import dataclasses

import jax
from widelab_core.cliargs import positive_int
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-model", type=positive_int, default=128)
    ap.add_argument("--layers", type=positive_int, default=2)
    ap.add_argument("--heads", type=positive_int, default=4)
    ap.add_argument("--seq-len", type=positive_int, default=64)
    ap.add_argument("--steps", type=positive_int, default=60)
    ap.add_argument("--batch-size", type=positive_int, default=16)
    ap.add_argument("--entities", type=positive_int, default=400)
    ap.add_argument("--data-parallel", action="store_true")
    args = ap.parse_args()
    kg = make_kg(args.entities, seed=0)
    tok = Tokenizer.fit(kg.triples)
    cfg = LMConfig(tok.vocab_size, args.d_model, args.layers, args.heads, args.seq_len)
    tc = TrainConfig(steps=args.steps + 1, batch_size=args.batch_size, log_every=10**9)
    stream = FactStream(encode_kg(tok, kg), cfg.seq_len, tc.batch_size)
    devices = jax.local_devices() if args.data_parallel else None
    dev = jax.devices()[0]
    print(
        f"device: {dev.platform} {dev.device_kind} x{len(devices or [dev])}; "
        f"peak {peak_flops():.3g} FLOP/s"
    )
    print(
        f"config: L={cfg.n_layers} d={cfg.d_model} T={cfg.seq_len} batch={tc.batch_size}; "
        f"non-embedding params {param_counts(cfg)['non_embedding']:,}; "
        f"{flops_per_token(cfg):.3g} FLOP/token; {args.steps} timed steps"
    )
    out = {}
    for dtype in ("float32", "bfloat16"):
        res = train(cfg, dataclasses.replace(tc, compute_dtype=dtype), stream, devices=devices)
        out[dtype] = res
        print(
            f"{dtype:9s} compute: {res.tokens_per_s:10.0f} tokens/s  MFU {res.mfu:7.2%}  "
            f"final loss {res.losses[-1]:.4f}"
        )
    ratio = out["bfloat16"].tokens_per_s / out["float32"].tokens_per_s
    print(f"bfloat16 / float32 throughput: {ratio:.2f}x")


if __name__ == "__main__":
    main()
