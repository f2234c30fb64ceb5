"""Data-parallel training on 8 fake CPU devices repeats the 1-device loss trajectory;
bfloat16 compute keeps float32 master weights."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from widelab_lm_hallucination import (
    FactStream,
    LMConfig,
    Tokenizer,
    TrainConfig,
    encode_kg,
    make_kg,
    train,
)

SCRIPT = """
import json, jax
from widelab_lm_hallucination import FactStream, LMConfig, Tokenizer, TrainConfig, encode_kg
from widelab_lm_hallucination import make_kg, train
kg = make_kg(12, seed=1)
tok = Tokenizer.fit(kg.triples)
cfg = LMConfig(tok.vocab_size, d_model=16, n_layers=1, n_heads=2, seq_len=32)
tc = TrainConfig(steps=8, batch_size=8, lr=3e-3, warmup=2)
stream = FactStream(encode_kg(tok, kg), cfg.seq_len, tc.batch_size, tc.seed)
one = train(cfg, tc, stream)
res = train(cfg, tc, stream, devices=jax.local_devices())
shard = res.state.params[0][0]["tok"].sharding
print(json.dumps({"n": len(jax.devices()), "one": one.losses, "many": res.losses,
                  "replicated": shard.is_fully_replicated,
                  "n_shard_devices": len(shard.device_set)}))
"""


def test_eight_devices_repeat_the_one_device_losses():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["n"] == 8 and r["replicated"] and r["n_shard_devices"] == 8
    one, many = np.array(r["one"]), np.array(r["many"])
    # Only the order of the float32 sums over the batch differs (8 partial sums then an
    # all-reduce): relative rounding ~ 1e-7 per loss and gradient entry. Adam divides by
    # sqrt(v), which can enlarge relative gradient noise in near-zero coordinates, so
    # after 8 steps we allow 1e-4 relative: 1000 times float32 epsilon, still far below
    # the loss decrease per step (~1e-2) that a wrong all-reduce or double-counted
    # batch would show.
    np.testing.assert_allclose(many, one, rtol=1e-4)
    assert one[-1] < one[0]


def test_bfloat16_compute_keeps_float32_master_weights():
    kg = make_kg(12, seed=1)
    tok = Tokenizer.fit(kg.triples)
    cfg = LMConfig(tok.vocab_size, d_model=16, n_layers=1, n_heads=2, seq_len=32)
    tc = TrainConfig(steps=6, batch_size=4, lr=3e-3, warmup=2)
    stream = FactStream(encode_kg(tok, kg), cfg.seq_len, tc.batch_size, tc.seed)
    f32 = train(cfg, tc, stream)
    bf16 = train(cfg, TrainConfig(**{**tc.__dict__, "compute_dtype": "bfloat16"}), stream)
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(bf16.state.params))
    # bfloat16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%); a loss of
    # ~log(vocab) summed through a few layers agrees to about a per cent
    np.testing.assert_allclose(bf16.losses, f32.losses, rtol=0.02)
    assert bf16.losses != f32.losses  # the cast really happens
    with pytest.raises(ValueError, match="compute_dtype"):
        TrainConfig(compute_dtype="float16")
    with pytest.raises(ValueError, match="divisible"):
        train(cfg, TrainConfig(steps=1, batch_size=3), stream, devices=jax.devices()[:2])
