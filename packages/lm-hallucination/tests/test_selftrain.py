"""ReST-EM with the KG verifier."""

import dataclasses

import pytest
from widelab_lm_hallucination import RestConfig, TrainConfig, rest_em


def test_rest_em_keeps_only_verified_samples(tiny_lm, key, monkeypatch):
    cfg, params, tok, split, res = tiny_lm
    import widelab_lm_hallucination.selftrain as st

    seen_data = []
    real_train = st.train

    def spy(cfg_, tc_, stream, *, init_params=None, **kw):
        seen_data.append([tok.decode(f) for f in stream.facts])
        assert init_params is params  # every M-step starts from the base model
        return real_train(cfg_, tc_, stream, init_params=init_params, **kw)

    monkeypatch.setattr(st, "train", spy)
    rc = RestConfig(
        iterations=1,
        samples_per_query=4,
        cap_per_query=1,
        temperature=1.5,
        finetune=TrainConfig(steps=5, batch_size=8, lr=1e-3, warmup=1),
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
