"""Malformed rating and play files: each gives one error naming file, line and field."""

import re

import numpy as np
import pytest
from widelab_core.datasets import read_lastfm_360k, read_movielens_1m, read_movielens_100k

PLAYS = "usersha1-artmbid-artname-plays.tsv"


def ml100k(tmp_path, text):
    (tmp_path / "u.data").write_bytes(text.encode("latin-1"))
    return tmp_path


def ml1m(tmp_path, text):
    (tmp_path / "ratings.dat").write_bytes(text.encode("latin-1"))
    return tmp_path


def lastfm(tmp_path, text):
    (tmp_path / PLAYS).write_bytes(text.encode("utf-8"))
    return tmp_path


GOOD_100K = "1\t10\t3\t881250949\n2\t10\t4\t881250950\n"
GOOD_1M = "1::10::3::978300760\n2::10::4::978300761\n"


@pytest.mark.parametrize("rating", ["0", "-3", "99", "5.5"])
@pytest.mark.parametrize("fmt", ["100k", "1m"])
def test_rating_outside_documented_range(tmp_path, rating, fmt):
    if fmt == "100k":
        path = ml100k(tmp_path, GOOD_100K + f"3\t11\t{rating}\t881250951\n")
        reader, name = read_movielens_100k, "u.data"
    else:
        path = ml1m(tmp_path, GOOD_1M + f"3::11::{rating}::978300762\n")
        reader, name = read_movielens_1m, "ratings.dat"
    with pytest.raises(ValueError, match=rf"{name}, line 3: rating {rating} is outside") as e:
        reader(path)
    assert "from 1 to 5" in str(e.value)


def test_rating_range_is_configurable(tmp_path):
    path = ml100k(tmp_path, GOOD_100K + "3\t11\t0.5\t881250951\n")
    data = read_movielens_100k(path, rating_range=(0.5, 5))
    assert sorted(data.matrix.data.tolist()) == [0.5, 3.0, 4.0]
    with pytest.raises(ValueError, match="rating_range low end exceeds high end"):
        read_movielens_100k(path, rating_range=(5, 1))
    with pytest.raises(ValueError, match="rating_range must be a"):
        read_movielens_100k(path, rating_range=3)


@pytest.mark.parametrize("field", [0, 1])
def test_id_with_underscore_is_not_an_integer(tmp_path, field):
    parts = ["1", "10", "3", "881250949"]
    parts[field] = "1_0"
    path = ml100k(tmp_path, "\t".join(parts) + "\n")
    what = ["user id", "item id"][field]
    with pytest.raises(ValueError, match=rf"u.data, line 1: {what} '1_0' is not an integer"):
        read_movielens_100k(path)


@pytest.mark.parametrize("plays", ["1_000", "\u0664", " 7"])  # "4" in Arabic-Indic digits
def test_play_count_must_be_plain_ascii_digits(tmp_path, plays):
    path = lastfm(tmp_path, f"u1\t\tartist\t{plays}\n")
    with pytest.raises(ValueError, match=rf"{PLAYS}, line 1: plays '{plays}' is not an integer"):
        read_lastfm_360k(path)


def test_timestamp_over_int64_names_file_and_line(tmp_path):
    huge = str(2**63)
    path = ml100k(tmp_path, GOOD_100K + f"3\t11\t4\t{huge}\n")
    with pytest.raises(ValueError, match=rf"u.data, line 3: timestamp '{huge}' is out of range"):
        read_movielens_100k(path)


def test_play_count_over_int64_names_file_and_line(tmp_path):
    huge = str(2**64)
    path = lastfm(tmp_path, f"u1\t\ta\t3\nu2\t\tb\t{huge}\n")
    with pytest.raises(ValueError, match=rf"{PLAYS}, line 2: plays '{huge}' is out of range"):
        read_lastfm_360k(path)


def test_play_counts_summing_past_int64(tmp_path):
    big = str(2**63 - 1)
    path = lastfm(tmp_path, f"u1\t\ta\t{big}\nu1\t\ta\t{big}\n")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / PLAYS}: the plays of one")):
        read_lastfm_360k(path)


def test_plays_range_is_configurable(tmp_path):
    path = lastfm(tmp_path, "u1\t\ta\t3\nu2\t\tb\t70\n")
    assert read_lastfm_360k(path).matrix.data.tolist() == [3.0, 70.0]
    with pytest.raises(
        ValueError, match=rf"{PLAYS}, line 2: plays 70 is outside .*from 0 to 50; .*plays_range"
    ):
        read_lastfm_360k(path, plays_range=(0, 50))


@pytest.mark.parametrize("text", ["", "\n\n", "  \n"])
def test_empty_ratings_file(tmp_path, text):
    with pytest.raises(ValueError, match=r"u.data: the file holds no ratings"):
        read_movielens_100k(ml100k(tmp_path, text))
    with pytest.raises(ValueError, match=r"ratings.dat: the file holds no ratings"):
        read_movielens_1m(ml1m(tmp_path, text))


def test_empty_plays_file(tmp_path):
    with pytest.raises(ValueError, match=rf"{PLAYS}: the file holds no play counts"):
        read_lastfm_360k(lastfm(tmp_path, ""))


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity"])
def test_non_finite_rating(tmp_path, bad):
    path = ml100k(tmp_path, GOOD_100K + f"3\t11\t{bad}\t881250951\n")
    with pytest.raises(ValueError, match=rf"u.data, line 3: rating '{bad}' is not finite"):
        read_movielens_100k(path)


@pytest.mark.parametrize("bad", [" 4", "4_0", "4e", "0x4"])
def test_rating_must_be_a_plain_number(tmp_path, bad):
    path = ml100k(tmp_path, GOOD_100K + f"3\t11\t{bad}\t881250951\n")
    with pytest.raises(ValueError, match=r"u.data, line 3: rating .* is not a number"):
        read_movielens_100k(path)


def test_clean_file_parses_as_before(tmp_path):
    data = read_movielens_1m(ml1m(tmp_path, GOOD_1M))
    assert data.matrix.toarray().tolist() == [[3.0], [4.0]]
    assert np.asarray(data.timestamps.data).tolist() == [978300760, 978300761]
