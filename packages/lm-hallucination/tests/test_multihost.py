"""Multi-host data-parallel training: two local processes joined through core's
``jax.distributed`` wrapper repeat the single-process loss trajectory."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from widelab_lm_hallucination import (
    read_metrics,
    train,
)

SETUP = """
from widelab_lm_hallucination import FactStream, LMConfig, Tokenizer, TrainConfig, encode_kg
from widelab_lm_hallucination import make_kg
kg = make_kg(12, seed=1)
tok = Tokenizer.fit(kg.triples)
cfg = LMConfig(tok.vocab_size, d_model=16, n_layers=1, n_heads=2, seq_len=32)
tc = TrainConfig(steps=6, batch_size=8, lr=3e-3, warmup=2, log_every=1)
stream = FactStream(encode_kg(tok, kg), cfg.seq_len, tc.batch_size, tc.seed)
"""

WORKER = """
import json, sys
import jax
from widelab_core.devices import initialize_distributed
info = initialize_distributed(sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
from widelab_lm_hallucination import train
{setup}
res = train(cfg, tc, stream, run_dir=sys.argv[3], devices=jax.devices())
print("RESULT " + json.dumps({{"info": list(info), "losses": res.losses}}), flush=True)
"""


@pytest.mark.slow
def test_two_processes_repeat_the_single_process_losses(tmp_path):
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(setup=SETUP))
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu"
    )
    run = tmp_path / "run"  # one folder shared by both processes
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), f"localhost:{port}", str(rank), str(run)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=300)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    results = []
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out
        line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
        results.append(json.loads(line[len("RESULT ") :]))
    # two processes, two devices each: one 4-device job
    assert [r["info"] for r in results] == [[0, 2, 2, 4], [1, 2, 2, 4]]
    # the parameters are replicated: both processes see the same (all-reduced) losses
    assert results[0]["losses"] == results[1]["losses"]
    ns = {}
    exec(SETUP, ns)
    one = train(ns["cfg"], ns["tc"], ns["stream"]).losses
    # Only the order of the float32 sums over the batch differs (4 partial sums, then an
    # all-reduce across the processes): relative rounding ~1e-7 per loss and gradient
    # entry, which Adam's 1 / sqrt(v) can enlarge in near-zero coordinates; after 6 steps
    # 1e-4 relative (~1000 float32 eps) still lies far below the loss change per step
    # (~1e-2) that a batch shard fed twice, or not at all, would show.
    np.testing.assert_allclose(results[0]["losses"], one, rtol=1e-4)
    assert one[-1] < one[0]
    # process 0 alone wrote the shared run folder: one metrics line per step
    assert [m["step"] for m in read_metrics(run / "metrics.jsonl")] == list(range(1, 7))
    assert (run / "checkpoint.npz").exists()
