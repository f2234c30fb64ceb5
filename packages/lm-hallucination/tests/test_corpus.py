"""Tokenizer, serialisation, packing and the resumable fact stream."""

import numpy as np
import pytest
from widelab_lm_hallucination import (
    FactStream,
    Tokenizer,
    UnknownTokenError,
    encode_kg,
    make_kg,
    pack,
)


def test_serialisation_round_trip():
    tok = Tokenizer.fit([("Ann Lee", "born in", "Rome"), ("Bo", "knows", "Ann Lee")])
    ids = tok.encode_fact("Ann Lee", "born in", "Rome")
    assert tok.decode(ids) == "<S>Ann Lee<P><born in><O>Rome<EOS>"
    assert ids[0] == tok.id("<S>") and ids[-1] == tok.id("<EOS>")
    assert tok.encode_fact("Bo", "knows") == ids[:0] + tok.encode_fact("Bo", "knows")
    assert tok.decode_object(tok.encode_name("Rome") + [4, 7]) == ("Rome", True)
    assert tok.decode_object(tok.encode_name("Ro")) == ("Ro", False)
    assert tok.decode_object(tok.encode_name("Ro") + [2]) == ("Ro", False)
    assert Tokenizer.from_json(tok.to_json()) == tok


def test_unknown_tokens_are_clear_errors():
    tok = Tokenizer.fit([("Ann", "knows", "Bo")])
    with pytest.raises(UnknownTokenError, match=r"'z' at position 2 of 'Anz'"):
        tok.encode_name("Anz")
    with pytest.raises(UnknownTokenError, match="unknown relation 'likes'"):
        tok.encode_fact("Ann", "likes", "Bo")


def test_pack_keeps_facts_whole_and_complete():
    kg = make_kg(60, seed=0)
    tok = Tokenizer.fit(kg.triples)
    facts = encode_kg(tok, kg)
    order = np.random.default_rng(0).permutation(len(facts))
    rows = pack(facts, order, 40)
    text = "".join(tok.decode(r[r != 0]) for r in rows)
    assert text == "".join(tok.decode(facts[i]) for i in order)
    for r in rows:  # each row starts a fact and ends after <EOS> (then padding)
        live = r[r != 0]
        assert live[0] == 1 and live[-1] == 4 and np.all(r[len(live) :] == 0)
    with pytest.raises(ValueError, match="longer than rows"):
        pack(facts, order, 5)


def test_stream_is_a_pure_function_of_the_cursor():
    kg = make_kg(40, seed=0)
    tok = Tokenizer.fit(kg.triples)
    fs = FactStream(encode_kg(tok, kg), 32, 16, seed=1)
    cur, seen = (0, 0), []
    for _ in range(12):  # crosses epoch boundaries
        b, nxt = fs.next_batch(cur)
        again, nxt2 = FactStream(encode_kg(tok, kg), 32, 16, seed=1).next_batch(cur)
        np.testing.assert_array_equal(b, again)
        assert nxt == nxt2 and b.shape == (16, 33)
        seen.append(b)
        cur = nxt
    assert cur[0] >= 1
    # different epochs are shuffled differently
    assert not np.array_equal(fs.epoch_rows(0), fs.epoch_rows(1))
    with pytest.raises(ValueError, match="empty"):
        FactStream([], 32, 5)
