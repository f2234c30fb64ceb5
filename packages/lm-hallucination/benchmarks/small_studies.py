"""Small detector and ReST-EM study behind the README figures (CPU, about 45 CPU-seconds).

Three one-block LMs (d = 16, 32, 64) trained 32 epochs on a 96-fact synthetic KG; frozen
detector heads against LM size and detector size; two ReST-EM iterations on d = 32.

    uv run python packages/lm-hallucination/benchmarks/small_studies.py
"""

from __future__ import annotations

import dataclasses
import json
import time

import jax
from widelab_lm_hallucination import (
    DetectorConfig,
    LMConfig,
    RestConfig,
    Tokenizer,
    TrainConfig,
    detectability,
    make_kg,
    rest_em,
    split_kg,
    train_with_evals,
)


def main() -> None:
    t0, c0 = time.time(), time.process_time()
    kg = make_kg(30, seed=0)
    split = split_kg(kg, 0.1, seed=0)
    tok = Tokenizer.fit(kg.triples)
    tc = TrainConfig(batch_size=8, lr=1e-2, warmup=10)
    lms = []
    for d in (16, 32, 64):
        cfg = LMConfig(tok.vocab_size, d, 1, max(1, d // 16), 48)
        pts, res = train_with_evals(cfg, tc, split, tok, (32,))
        print("LM", d, "seen rate", pts[-1].seen, "unseen", pts[-1].unseen, flush=True)
        lms.append((cfg, res.state.params))
    seen = list(split.seen)
    heads = [DetectorConfig(task="sentence", width=32), DetectorConfig(task="token", width=32)]
    for r in detectability(lms, split.full, tok, seen, heads, key=jax.random.key(0)):
        print("DET", json.dumps(r), flush=True)
    sizes = [DetectorConfig(width=w) for w in (4, 16, 64)]
    sizes.append(DetectorConfig(mode="finetune", steps=100))
    for r in detectability(lms[-1:], split.full, tok, seen, sizes, key=jax.random.key(0)):
        print("DETSIZE", json.dumps(r), flush=True)
    cfg, params = lms[1]
    ft = dataclasses.replace(tc, steps=150, lr=1e-3, loss_on="answer")
    rc = RestConfig(iterations=2, finetune=ft)
    hist, _ = rest_em(cfg, params, tok, split, rc, key=jax.random.key(1))
    for h in hist:
        print("REST", json.dumps(h), flush=True)
    print("wall", time.time() - t0, "cpu", time.process_time() - c0)


if __name__ == "__main__":
    main()
