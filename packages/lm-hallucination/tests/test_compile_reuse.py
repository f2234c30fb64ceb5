"""One compiled training step per model shape: the schedule is an argument, not a constant."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from widelab_lm_hallucination import (
    FactStream,
    LMConfig,
    Tokenizer,
    TrainConfig,
    cell_steps,
    encode_kg,
    init_state,
    make_kg,
    make_optimizer,
    next_token_loss,
    run_cell,
    schedule_args,
    schedule_value,
    split_kg,
    train,
)

_COMPILES: list[str] = []
_ACTIVE: list[bool] = []


def _listen(event, duration, **kw):
    if _ACTIVE and event.endswith("backend_compile_duration"):
        _COMPILES.append(event)


jax.monitoring.register_event_duration_secs_listener(_listen)


@contextlib.contextmanager
def _count_compiles():
    _COMPILES.clear()
    _ACTIVE.append(True)
    try:
        yield _COMPILES
    finally:
        _ACTIVE.pop()


def test_schedule_equals_optax_schedule():
    counts = jnp.arange(340, dtype=jnp.int32)  # one shape: the eager ops compile once
    for steps, warmup, ratio in [(100, 10, 0.1), (7, 50, 0.0), (1, 0, 0.5), (333, 20, 0.02)]:
        tc = TrainConfig(steps=steps, lr=3e-3, warmup=warmup, min_lr_ratio=ratio)
        warm = max(1, min(warmup, steps // 10))
        ref = optax.warmup_cosine_decay_schedule(
            0.0, 3e-3, warm, max(steps, warm + 1), end_value=3e-3 * ratio
        )
        got = np.asarray(schedule_value(counts, schedule_args(tc)))
        # float32 arithmetic in another order than optax's: a few ulp at most
        np.testing.assert_allclose(got, np.asarray(ref(counts)), rtol=1e-6, atol=1e-12)


def test_cells_of_one_shape_share_one_compiled_step(tmp_path):
    kg = make_kg(10, seed=4)
    split = split_kg(kg, 0.2, seed=0)
    tok = Tokenizer.fit(kg.triples)
    cfg = LMConfig(tok.vocab_size, d_model=16, n_layers=1, n_heads=2, seq_len=32)
    tc = TrainConfig(batch_size=4, lr=1e-2, warmup=2, seed=0)
    run_cell(tmp_path / "a", cfg, tc, split, tok, 1.0)
    # another schedule length, learning rate, warmup and seed: the same compiled programs
    other = TrainConfig(batch_size=4, lr=5e-3, warmup=3, min_lr_ratio=0.2, seed=1)
    with _count_compiles() as compiles:
        p = run_cell(tmp_path / "b", cfg, other, split, tok, 3.0)
    assert compiles == []
    stream = FactStream(encode_kg(tok, split.train), cfg.seq_len, 4, 1)
    assert p.steps == cell_steps(stream, 3.0) > 1

    # the shared step trains as a plain optax loop with the schedule closed over as
    # constants (optax's own schedule) does
    tc = TrainConfig(steps=6, batch_size=4, lr=1e-2, warmup=2, seed=3)
    with _count_compiles() as compiles:
        got = train(cfg, tc, stream).losses
    assert compiles == []
    opt = make_optimizer(tc)
    state = init_state(cfg, tc)
    params, opt_state, key, cursor = state.params, state.opt_state, state.key, state.cursor

    @jax.jit
    def step(params, opt_state, rows, k):
        loss, g = jax.value_and_grad(lambda p: next_token_loss(cfg, p, rows, 0, k, False))(params)
        upd, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, upd), opt_state, loss

    want = []
    for _ in range(tc.steps):
        rows, cursor = stream.next_batch(cursor)
        key, k = jax.random.split(key)
        params, opt_state, loss = step(params, opt_state, jnp.asarray(rows), k)
        want.append(float(loss))
    # schedules equal up to a few ulp (see above): the losses agree to float32 noise
    np.testing.assert_allclose(got, want, rtol=1e-5)
