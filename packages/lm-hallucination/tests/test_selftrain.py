"""ReST-EM with the KG verifier."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from widelab_lm_hallucination import (
    RestConfig,
    TrainConfig,
    answer_mask,
    logits_fn,
    next_token_loss,
    rest_em,
)


def test_rest_em_keeps_only_verified_samples(tiny_lm, key, monkeypatch):
    cfg, params, tok, split, res = tiny_lm
    import widelab_lm_hallucination.selftrain as st

    seen_data = []
    real_train = st.train

    def spy(cfg_, tc_, stream, *, init_params=None, **kw):
        seen_data.append([tok.decode(f) for f in stream.facts])
        assert init_params is params  # every M-step starts from the base model
        assert tc_.loss_on == "answer"  # fine-tuning on the verified answers only
        return real_train(cfg_, tc_, stream, init_params=init_params, **kw)

    monkeypatch.setattr(st, "train", spy)
    rc = RestConfig(
        iterations=1,
        samples_per_query=4,
        cap_per_query=1,
        temperature=1.5,
        top_k=4,
        top_p=0.95,
        finetune=TrainConfig(steps=5, batch_size=8, lr=1e-3, warmup=1, loss_on="answer"),
        eval_samples=4,
        pass_k=(1, 4),
    )
    hist, _ = rest_em(cfg, params, tok, split, rc, key=key)
    assert [h["iteration"] for h in hist] == [0, 1]
    kept = seen_data[0]
    assert len(kept) == hist[1]["kept"] <= len(split.seen)  # cap of one per query
    for text in kept:  # every kept sample is a valid fact
        s, rest = text[3:].split("<P><", 1)
        r, o = rest.split("><O>", 1)
        assert split.full.is_valid(s, r, o.removesuffix("<EOS>"))
    for h in hist:
        assert 0.0 <= h["seen_pass@1"] <= h["seen_pass@4"] <= 1.0
    assert hist[0]["seen_accuracy"] >= 0.9  # the memorising base model
    with pytest.raises(ValueError, match="pass_k"):
        dataclasses.replace(rc, pass_k=(5,))
    assert RestConfig().finetune.loss_on == "answer"


def test_answer_only_loss_counts_object_tokens_only(tiny_lm):
    cfg, params, tok, split, _ = tiny_lm
    facts = [tok.encode_fact(*t) for t in split.train.triples[:3]]
    row = np.zeros(cfg.seq_len + 1, np.int32)
    flat = [i for f in facts for i in f][: cfg.seq_len + 1]
    row[: len(flat)] = flat
    rows = jnp.asarray(row[None])
    mask = np.asarray(answer_mask(rows))[0]
    # the answer tokens of each whole fact: its object's characters and <EOS>
    want = np.zeros_like(mask)
    at = 0
    for f in facts:
        o = f.index(3)
        if at + len(f) <= len(flat):
            want[at + o + 1 : at + len(f)] = True
        at += len(f)
    np.testing.assert_array_equal(mask[: at - len(facts[-1])], want[: at - len(facts[-1])])
    # the loss is the mean NLL over exactly those targets
    logp = jax.nn.log_softmax(logits_fn(cfg, params, rows[:, :-1]), -1)[0]
    nll = -np.take_along_axis(np.asarray(logp), row[1:, None], 1)[:, 0]
    w = mask[1:] & (row[1:] != 0)
    got = float(next_token_loss(cfg, params, rows, answer_only=True))
    assert got == pytest.approx(nll[w].mean(), rel=1e-5)
    assert got != pytest.approx(float(next_token_loss(cfg, params, rows)), rel=1e-3)
