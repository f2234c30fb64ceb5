"""Data-parallel training on 8 fake CPU devices, and on two local processes joined through
core's ``jax.distributed`` wrapper (``widelab lm train --coordinator ...``), repeats the
1-device loss trajectory; bfloat16 compute keeps float32 master weights."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from widelab_core.cli import main
from widelab_core.testing import run_local_processes
from widelab_lm_hallucination import (
    TrainConfig,
    data_mesh,
    fsdp_sharding,
    leaf_spec,
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


@pytest.fixture(scope="module")
def eight_devices(one_device, tmp_path_factory):
    """The setup's 8-device replicated run (on the conftest's 8 fake CPU devices), with
    checkpoints at steps 3 and 6 in its run folder; None under another device count."""
    ns, _ = one_device
    if len(jax.local_devices()) != 8:
        return None
    run = tmp_path_factory.mktemp("replicated")
    tc = dataclasses.replace(ns["tc"], checkpoint_every=3)
    return run, train(ns["cfg"], tc, ns["stream"], run_dir=run, devices=jax.local_devices())


def test_eight_devices_repeat_the_one_device_losses(one_device, eight_devices):
    ns, one = one_device
    if eight_devices is not None:  # the workspace conftest fakes 8 CPU devices
        res = eight_devices[1]
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


def _resume(ns, src, dest, **kw):
    """Train the setup to its end from the checkpoint file ``src`` (copied into the
    fresh run folder ``dest``) on the 8 devices; the losses of the steps run."""
    dest.mkdir()
    shutil.copy(src, dest / "checkpoint.npz")
    devices = jax.local_devices()
    return train(ns["cfg"], ns["tc"], ns["stream"], run_dir=dest, devices=devices, **kw).losses


def test_sharded_parameters_repeat_the_replicated_run(one_device, eight_devices, tmp_path):
    if eight_devices is None:
        pytest.skip("needs the workspace conftest's 8 fake CPU devices")
    ns, _ = one_device
    rep_dir, rep = eight_devices
    tc = dataclasses.replace(ns["tc"], checkpoint_every=3)
    shd_dir = tmp_path / "sharded"
    shd = train(
        ns["cfg"], tc, ns["stream"], run_dir=shd_dir, devices=jax.local_devices(), shard_params=True
    )
    # every array with an axis divisible by 8 is split: each device holds 1/8 of it
    leaves = jax.tree.leaves((shd.state.params, shd.state.opt_state))
    split = [x for x in leaves if leaf_spec(x.shape, 8) != P()]
    assert len(split) == 3 * len(jax.tree.leaves(shd.state.params))  # weights, Adam mu, nu
    for x in split:
        assert len(x.sharding.device_set) == 8 and not x.sharding.is_fully_replicated
        assert all(s.data.size * 8 == x.size for s in x.addressable_shards)
    tok = shd.state.params[0][0]["tok"]  # (vocab, 16): the vocabulary is not divisible by 8
    assert tok.sharding.spec == P(None, "data") and tok.addressable_shards[0].data.shape[1] == 2
    # arrays without such an axis (the optimizer's step counts) are replicated
    assert [x.shape for x in leaves if x.sharding.is_fully_replicated] == [()] * 2
    # Both runs split each batch over the same 8 devices and compute the same sums; only
    # how XLA groups and orders the float32 partial sums of the gradients differs (one
    # per-array cross-device sum per gradient instead of one combined all-reduce, then
    # the weights gathered back), ~1 ulp (6e-8 relative) per sum. Over 6 Adam steps
    # 1e-5 relative (~80 ulp) bounds it (seen: 1.2e-7) and lies a thousand times below
    # the per-step loss change (~1e-2) that a misplaced or unreduced shard shows.
    np.testing.assert_allclose(shd.losses, rep.losses, rtol=1e-5)
    # checkpoints keep the replicated run's layout: the gathered arrays, same names/shapes
    with np.load(shd_dir / "checkpoint.npz") as a, np.load(rep_dir / "checkpoint.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        assert all(a[k].shape == b[k].shape and a[k].dtype == b[k].dtype for k in a.files)
        for i, x in enumerate(leaves):
            np.testing.assert_array_equal(a[f"leaf_{i}"], np.asarray(x))  # bit for bit
    # resuming is bit-exact under sharding, and the checkpoints are interchangeable:
    # sharded from a replicated checkpoint, replicated from a sharded one
    prev = "checkpoint.prev.npz"  # step 3
    assert _resume(ns, shd_dir / prev, tmp_path / "s_s", shard_params=True) == shd.losses[3:]
    from_rep = _resume(ns, rep_dir / prev, tmp_path / "r_s", shard_params=True)
    from_shd = _resume(ns, shd_dir / prev, tmp_path / "s_r")
    # equal to the runs resumed in their own layout to the tolerance above (same reason)
    np.testing.assert_allclose(from_rep, rep.losses[3:], rtol=1e-5)
    np.testing.assert_allclose(from_shd, shd.losses[3:], rtol=1e-5)


def test_leaf_spec_splits_the_largest_divisible_axis():
    assert leaf_spec((35, 16), 8) == P(None, "data")
    assert leaf_spec((24, 16), 8) == P("data", None)  # the largest divisible axis
    assert leaf_spec((16, 16), 8) == P("data", None)  # the first of equal ones
    assert leaf_spec((2, 16, 8), 8) == P(None, "data", None)
    assert leaf_spec((35,), 8) == leaf_spec((), 8) == leaf_spec((3, 5), 2) == P()
    mesh = data_mesh(jax.devices()[:1])
    assert fsdp_sharding({"w": np.zeros((3, 5))}, mesh)["w"].spec == P(None, "data")


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
