"""Key-value-cache decoding against full recompute; top-k and nucleus sampling rules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_lm_hallucination import LMConfig, generate, logits_fn, transformer
from widelab_lm_hallucination.kvcache import _blocks, _prefill, choose


def test_cached_decoding_equals_full_recompute(tiny_lm, key):
    cfg, params, tok, split, _ = tiny_lm
    qs = list(split.seen)[:8]
    for kw in (
        {},
        {"greedy": False, "n_samples": 3, "key": key},
        {"greedy": False, "n_samples": 3, "key": key, "top_k": 3, "top_p": 0.9},
    ):
        fast = generate(cfg, params, tok, qs, max_new=20, **kw)
        slow = generate(cfg, params, tok, qs, max_new=20, kv_cache=False, **kw)
        assert fast.objects == slow.objects
        np.testing.assert_array_equal(fast.tokens, slow.tokens)


def test_prefill_logits_equal_the_model_for_deep_stacks(key):
    # five blocks use core's ``repeat`` (stacked parameters); the cache reads both layouts
    for n_layers in (2, 5):
        cfg = LMConfig(13, d_model=16, n_layers=n_layers, n_heads=2, seq_len=12)
        # the parameters' layout (traced, not compiled) filled with N(0, 1) draws: every
        # weight of the NTK parameterisation is N(0, 1) at init; the layer-norm scales
        # here are random too, so no factor of one hides a misplaced parameter
        layout = jax.eval_shape(lambda k: transformer(cfg).init(k, (1, 12))[1], key)
        rng = np.random.default_rng(n_layers)
        params = jax.tree.map(lambda x: rng.standard_normal(x.shape).astype(x.dtype), layout)
        ids = jax.random.randint(jax.random.key(1), (3, 12), 0, 13)

        # one compiled program per depth (as in decoding), not one dispatch per operation
        @jax.jit
        def both(params, ids):
            return _prefill(cfg, *_blocks(cfg, params), ids)[0], logits_fn(cfg, params, ids)

        got, want = both(params, ids)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_top_k_and_nucleus_keep_the_right_tokens():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
    keys = jax.random.split(jax.random.key(3), 2000)

    def draws(**kw):
        f = jax.vmap(lambda k: choose(logits, False, k, 1.0, **kw)[0])
        return np.bincount(np.asarray(f(keys)), minlength=4) / len(keys)

    assert set(np.nonzero(draws(top_k=2))[0]) == {0, 1}
    # nucleus 0.7: tokens 0 and 1 (0.5 < 0.7 <= 0.8) form the smallest set reaching 0.7
    p = draws(top_p=0.7)
    assert set(np.nonzero(p)[0]) == {0, 1}
    # renormalised: 0.5 / 0.8 = 0.625; binomial standard error sqrt(pq/n) ~ 0.011
    assert p[0] == pytest.approx(0.625, abs=4 * np.sqrt(0.625 * 0.375 / len(keys)))
    assert set(np.nonzero(draws(top_p=0.1))[0]) == {0}  # the top token always stays
    assert int(choose(logits, True, keys[0], 1.0)[0]) == 0
