"""Run files under damage: checkpoint fallback, torn metrics, SIGINT, kept callback arrays."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from widelab_lm_hallucination import (
    FactStream,
    LMConfig,
    RunFormatError,
    Tokenizer,
    TrainConfig,
    encode_kg,
    init_state,
    load_checkpoint,
    make_kg,
    read_metrics,
    train,
)


def _setup(steps=6):
    kg = make_kg(10, seed=2)
    tok = Tokenizer.fit(kg.triples)
    cfg = LMConfig(tok.vocab_size, d_model=16, n_layers=1, n_heads=2, seq_len=32)
    tc = TrainConfig(steps=steps, batch_size=4, lr=3e-3, warmup=2, log_every=1)
    return cfg, tc, FactStream(encode_kg(tok, kg), cfg.seq_len, tc.batch_size, tc.seed)


def test_unreadable_checkpoint_falls_back_to_previous(tmp_path):
    cfg, tc, stream = _setup()
    full = train(cfg, tc, stream)
    tc2 = TrainConfig(**{**tc.__dict__, "checkpoint_every": 2})
    train(cfg, tc2, stream, run_dir=tmp_path, stop_after=4)  # checkpoints at 2 and 4
    ckpt = tmp_path / "checkpoint.npz"
    assert load_checkpoint(tmp_path / "checkpoint.prev.npz", init_state(cfg, tc)).step == 2
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # torn write of the newest checkpoint
    with pytest.raises(RunFormatError, match="checkpoint.npz: unreadable checkpoint"):
        load_checkpoint(ckpt, init_state(cfg, tc))
    with pytest.warns(RuntimeWarning, match="resuming from .*checkpoint.prev.npz"):
        rest = train(cfg, tc2, stream, run_dir=tmp_path)
    assert rest.losses == full.losses[2:]  # steps 3..6 replayed from step 2 exactly
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == list(range(1, 7))


def test_torn_metrics_line_is_dropped_with_a_warning(tmp_path):
    cfg, tc, stream = _setup()
    train(cfg, tc, stream, run_dir=tmp_path, stop_after=3)
    path = tmp_path / "metrics.jsonl"
    path.write_text(path.read_text() + '{"step": 4, "lo')
    with pytest.warns(RuntimeWarning, match=r"metrics.jsonl:4: dropping a torn last line"):
        res = train(cfg, tc, stream, run_dir=tmp_path)
    assert res.state.step == 6
    assert [r["step"] for r in read_metrics(path)] == list(range(1, 7))
    path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(RunFormatError, match=r"metrics.jsonl:2: not a metrics record"):
        read_metrics(path)


def test_callback_may_keep_the_arrays_it_gets():
    cfg, tc, stream = _setup(steps=3)
    kept, steps = [], []

    def cb(state, loss):
        kept.append((state.params, loss))
        steps.append(state.step)

    train(cfg, tc, stream, callback=cb)
    assert steps == [1, 2, 3] and all(type(s) is int for s in steps)
    leaves = [np.asarray(leaf) for p, _ in kept for leaf in jax.tree.leaves(p)]  # none deleted
    assert len(leaves) == 3 * len(jax.tree.leaves(kept[0][0]))
    assert not np.array_equal(leaves[0], leaves[len(leaves) // 3])  # distinct steps kept
    assert all(np.isfinite(float(loss)) for _, loss in kept)


SCRIPT = """
import sys
from widelab_core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigint_saves_a_checkpoint_and_exits_130(tmp_path):
    out = tmp_path / "run"
    argv = ["lm", "train", "--entities", "12", "--d-model", "16", "--heads", "2"]
    argv += ["--layers", "1", "--seq-len", "48", "--batch-size", "4", "--steps", "100000"]
    argv += ["--checkpoint-every", "0", "--out", str(out)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never logged"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted; checkpoint of step" in stderr
    step = int(stderr.split("checkpoint of step ")[1].split()[0])
    assert step >= 20  # log_every is 10: at least two lines were written
    meta = json.loads((out / "run.json").read_text())
    cfg = LMConfig(**meta["model"])
    tc = TrainConfig(**meta["train"])
    assert load_checkpoint(out / "checkpoint.npz", init_state(cfg, tc)).step == step
