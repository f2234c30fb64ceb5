"""Data-parallel training on 8 fake CPU devices, and on two local processes joined through
core's ``jax.distributed`` wrapper (``widelab lm train --coordinator ...``), repeats the
1-device loss trajectory; bfloat16 compute keeps float32 master weights."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from widelab_core.cli import main
from widelab_core.testing import run_local_processes
from widelab_lm_hallucination import (
    TrainConfig,
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

SCRIPT = (
    """
import json, jax
from widelab_lm_hallucination import train
"""
    + SETUP
    + """
res = train(cfg, tc, stream, devices=jax.local_devices())
shard = res.state.params[0][0]["tok"].sharding
print(json.dumps({"n": len(jax.devices()), "many": res.losses,
                  "replicated": shard.is_fully_replicated,
                  "n_shard_devices": len(shard.device_set)}))
"""
)


@pytest.fixture(scope="module")
def one_device():
    """The setup's names and its 1-device float32 losses (trained once for the module)."""
    ns = {}
    exec(SETUP, ns)
    return ns, train(ns["cfg"], ns["tc"], ns["stream"]).losses


def test_eight_devices_repeat_the_one_device_losses(one_device):
    ns, one = one_device
    if len(jax.local_devices()) == 8:  # the workspace conftest fakes 8 CPU devices
        res = train(ns["cfg"], ns["tc"], ns["stream"], devices=jax.local_devices())
        shard = res.state.params[0][0]["tok"].sharding
        r = {"n": 8, "many": res.losses, "replicated": shard.is_fully_replicated}
        r["n_shard_devices"] = len(shard.device_set)
    else:  # another device count was set before JAX started: 8 in a fresh process
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
    many = np.array(r["many"])
    # Only the order of the float32 sums over the batch differs (8 partial sums then an
    # all-reduce): relative rounding ~ 1e-7 per loss and gradient entry. Adam divides by
    # sqrt(v), which can enlarge relative gradient noise in near-zero coordinates, so
    # after 6 steps we allow 1e-4 relative: 1000 times float32 epsilon, still far below
    # the loss decrease per step (~1e-2) that a wrong all-reduce or double-counted
    # batch would show.
    np.testing.assert_allclose(many, one, rtol=1e-4)
    assert one[-1] < one[0]


def test_bfloat16_compute_keeps_float32_master_weights(one_device):
    ns, f32 = one_device
    cfg, tc, stream = ns["cfg"], ns["tc"], ns["stream"]
    bf16 = train(cfg, TrainConfig(**{**tc.__dict__, "compute_dtype": "bfloat16"}), stream)
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(bf16.state.params))
    # bfloat16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%); a loss of
    # ~log(vocab) summed through a few layers agrees to about a per cent
    np.testing.assert_allclose(bf16.losses, f32, rtol=0.02)
    assert bf16.losses != f32  # the cast really happens
    with pytest.raises(ValueError, match="compute_dtype"):
        TrainConfig(compute_dtype="float16")
    with pytest.raises(ValueError, match="divisible"):
        train(cfg, TrainConfig(steps=1, batch_size=3), stream, devices=jax.devices()[:2])


# the two-process job runs the command line: ``widelab lm train --coordinator ...``
TRAIN = ["lm", "train", "--entities", "12", "--seed", "1", "--unseen-fraction", "0"]
TRAIN += ["--d-model", "16", "--layers", "1", "--heads", "2", "--seq-len", "32"]
TRAIN += ["--steps", "6", "--batch-size", "8", "--lr", "3e-3", "--log-every", "1"]
CLI = "import sys; from widelab_core.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.mark.slow
def test_two_processes_repeat_the_single_process_losses(tmp_path):
    run = tmp_path / "run"  # one folder shared by both processes
    dist = ["--num-processes", "2", "--out", str(run)]
    done = run_local_processes(
        lambda rank, coord: [
            "-c",
            CLI,
            *TRAIN,
            *dist,
            "--coordinator",
            coord,
            "--process-id",
            str(rank),
        ]
    )
    for rank, (code, out) in enumerate(done):
        assert code == 0, out
        # two processes, two devices each: one 4-device job
        assert f"process {rank} of 2; 4 devices;" in out, out
    # process 0 alone wrote the shared run folder: one metrics line per step
    many = read_metrics(run / "metrics.jsonl")
    assert [m["step"] for m in many] == list(range(1, 7))
    assert (run / "checkpoint.npz").exists()
    # the parameters are replicated: both processes print the same last (all-reduced) loss
    last = [[x.split(",")[0] for x in out.splitlines() if x.startswith("step ")] for _, out in done]
    assert last[0] == last[1] and last[0][-1].startswith("step 6: loss")
    assert main([*TRAIN, "--out", str(tmp_path / "one")]) == 0  # one process, one device
    one = [m["loss"] for m in read_metrics(tmp_path / "one" / "metrics.jsonl")]
    # Only the order of the float32 sums over the batch differs (4 partial sums, then an
    # all-reduce across the processes): relative rounding ~1e-7 per loss and gradient
    # entry, which Adam's 1 / sqrt(v) can enlarge in near-zero coordinates; after 6 steps
    # 1e-4 relative (~1000 float32 eps) still lies far below the loss change per step
    # (~1e-2) that a batch shard fed twice, or not at all, would show.
    np.testing.assert_allclose([m["loss"] for m in many], one, rtol=1e-4)
    assert one[-1] < one[0]
