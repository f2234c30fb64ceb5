"""Readers of the MovieLens-100K, MovieLens-1M and Last.fm-360K file formats, on small
files written here (latin-1 titles, empty fields, malformed lines)."""

import numpy as np
import pytest
import scipy.sparse as sp
from widelab_core.datasets import (
    InteractionData,
    read_lastfm_360k,
    read_movielens,
    read_movielens_1m,
    read_movielens_100k,
)


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def entry(data, user, item):
    return data.matrix[data.user_index[user], data.item_index[item]]


# ------------------------------------------------------------------ MovieLens-100K

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n196\t377\t5\t881251000\n"
U_USER = (
    "196|49|M|writer|55105\n186|39|F|executive|00000\n22|25|M|writer|40206\n7|57|M|none|T8H1N\n"
)
FLAGS = "|".join(["0"] * 19)


def ml100k(tmp_path):
    d = tmp_path / "ml-100k"
    d.mkdir()
    write(d / "u.data", U_DATA)
    write(d / "u.user", U_USER)
    action = "|".join(["0", "1"] + ["0"] * 17)
    write(
        d / "u.item",
        f"242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|{action}\n"
        f"302|Misérables, Les (1995)|01-Jan-1995||http://x|{FLAGS}\n"
        f"377|Heavyweights (1994)|||http://y|{FLAGS}\n"
        f"267|unknown||||{'|'.join(['1'] + ['0'] * 18)}\n",
        "latin-1",
    )
    return d


def test_movielens_100k_matrix_ids_and_attributes(tmp_path):
    d = ml100k(tmp_path)
    data = read_movielens_100k(d)
    assert isinstance(data.matrix, sp.csr_matrix) and data.matrix.dtype == np.float32
    # Users 7 (profile only) and items 267 (u.item only) get empty rows / columns.
    assert data.user_ids.tolist() == [7, 22, 186, 196]
    assert data.item_ids.tolist() == [242, 267, 302, 377]
    assert data.matrix.shape == (4, 4) and data.n_interactions == 4
    assert entry(data, 196, 242) == 3 and entry(data, 196, 377) == 5 and entry(data, 22, 377) == 1
    assert data.matrix[data.user_index[7]].nnz == 0
    assert data.timestamps[data.user_index[186], data.item_index[302]] == 891717742
    ua = data.user_attributes
    row = data.user_index[186]
    assert (ua["age"][row], ua["gender"][row], ua["occupation"][row], ua["zip"][row]) == (
        39,
        "F",
        "executive",
        "00000",
    )
    assert ua["zip"][data.user_index[7]] == "T8H1N"
    ia = data.item_attributes
    assert ia["title"][data.item_index[302]] == "Misérables, Les (1995)"  # latin-1 decoded
    assert ia["release_date"][data.item_index[377]] == ""
    assert ia["genres"].shape == (4, 19) and ia["genres"].dtype == bool
    assert ia["genres"][data.item_index[242]].nonzero()[0].tolist() == [1]
    assert data.meta["genre_names"][1] == "Action"
    # The u.data file itself works as the path, and read_movielens detects the format.
    again = read_movielens(d / "u.data")
    assert (again.matrix != data.matrix).nnz == 0


def test_movielens_100k_without_attribute_files_and_genre_file(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    write(d / "u.data", U_DATA)
    data = read_movielens_100k(d)
    assert data.user_attributes["age"].tolist() == [-1, -1, -1]
    assert data.item_attributes["genres"].shape == (3, 19)
    write(d / "u.genre", "".join(f"g{k}|{k}\n" for k in range(19)) + "\n")
    write(d / "u.item", f"242|A|||u|{FLAGS}\n")
    assert read_movielens_100k(d).meta["genre_names"][3] == "g3"


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("u.data", U_DATA + "\n1\t2\t3\n", r"u\.data, line 6: expected 4 '\\t'-separated"),
        ("u.data", "1\t2\t3\t4\t5\n6\t7\t8\n", r"u\.data, line 1: expected 4 '\\t'-separated"),
        ("u.data", "1\t2\tfive\t0\n", r"u\.data, line 1: rating 'five' is not a number"),
        ("u.data", "1\tx\t5\t0\n", r"u\.data, line 1: item id 'x' is not an integer"),
        ("u.data", "1\t2\tnan\t0\n", r"u\.data, line 1: rating 'nan' is not finite"),
        ("u.data", U_DATA + "22\t377\t4\t0\n", r"u\.data, line 5: user 22 rated item 377 again"),
        ("u.user", "1|x|M|writer|0\n", r"u\.user, line 1: age 'x' is not an integer"),
        ("u.user", "1|20|M|writer\n", r"u\.user, line 1: expected 5 '\|'-separated"),
        ("u.user", "1|20|M|a|0\n1|21|F|b|0\n", r"u\.user, line 2: user 1 listed again"),
        ("u.item", f"1|A|||u|{FLAGS[:-1]}2\n", r"u\.item, line 1: genre flags must be 0 or 1"),
        ("u.item", "1|A|||u|0|0\n", r"u\.item, line 1: expected 24"),
    ],
)
def test_movielens_100k_malformed_lines_name_file_and_line(tmp_path, name, text, match):
    d = tmp_path / "ml"
    d.mkdir()
    write(d / "u.data", U_DATA)
    write(d / name, text, "latin-1")
    with pytest.raises(ValueError, match=match):
        read_movielens_100k(d)


def test_vectorised_and_line_parsers_agree(tmp_path):
    """Clean files take a vectorised path; blank lines or CRLF send them to the line
    parser. Both must give the same data."""
    a, b, c = (tmp_path / k for k in "abc")
    for d in (a, b, c):
        d.mkdir()
    write(a / "u.data", U_DATA)
    write(b / "u.data", U_DATA.replace("\n", "\n\n", 1))
    write(c / "u.data", U_DATA.replace("\n", "\r\n"))
    from widelab_core.datasets import movielens

    def no_line_parser(*args):
        raise AssertionError("the clean file should take the vectorised path")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(movielens, "_ratings_slow", no_line_parser)
        ref = read_movielens_100k(a)
    for d in (b, c):
        other = read_movielens_100k(d)
        assert (other.matrix != ref.matrix).nnz == 0
        assert (other.timestamps != ref.timestamps).nnz == 0
        assert other.user_ids.tolist() == ref.user_ids.tolist()
    with pytest.raises(ValueError, match=r"u\.data, line 6: user 22 rated item 377 again"):
        write(b / "u.data", U_DATA.replace("\n", "\n\n", 1) + "22\t377\t4\t0\n")
        read_movielens_100k(b)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no 'u.data'"):
        read_movielens_100k(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither 'u.data' nor 'ratings.dat'"):
        read_movielens(tmp_path)
    with pytest.raises(FileNotFoundError, match="usersha1-artmbid-artname-plays.tsv"):
        read_lastfm_360k(tmp_path)
    wrong = write(tmp_path / "other.txt", "x")
    with pytest.raises(FileNotFoundError, match="expected a folder or 'ratings.dat'"):
        read_movielens_1m(wrong)


# ------------------------------------------------------------------ MovieLens-1M

RATINGS_DAT = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
USERS_DAT = "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n"
MOVIES_DAT = (
    "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
    "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
    "260::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Fantasy|Sci-Fi\n"
    "3::Así es la vida (2000)::Drama|Noir Polar\n"
)


def test_movielens_1m(tmp_path):
    d = tmp_path / "ml-1m"
    d.mkdir()
    write(d / "ratings.dat", RATINGS_DAT)
    write(d / "users.dat", USERS_DAT)
    write(d / "movies.dat", MOVIES_DAT, "latin-1")
    data = read_movielens(d)
    assert data.user_ids.tolist() == [1, 2, 3]
    assert data.item_ids.tolist() == [3, 260, 661, 1193]
    assert entry(data, 1, 1193) == 5 and entry(data, 2, 1193) == 4 and entry(data, 1, 661) == 3
    assert data.n_interactions == 3
    ua = data.user_attributes
    assert ua["gender"].tolist() == ["F", "M", "M"]
    assert ua["age"].tolist() == [1, 56, 25] and ua["occupation"].tolist() == [10, 16, 15]
    ia, names = data.item_attributes, data.meta["genre_names"]
    assert ia["title"][data.item_index[260]] == "Star Wars: Episode IV - A New Hope (1977)"
    assert ia["title"][data.item_index[3]] == "Así es la vida (2000)"
    assert len(names) == 19 and names[-1] == "Noir Polar"  # 18 standard + one found
    got = {names[k] for k in ia["genres"][data.item_index[661]].nonzero()[0]}
    assert got == {"Animation", "Children's", "Musical"}
    assert data.timestamps[0, data.item_index[661]] == 978302109


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("ratings.dat", RATINGS_DAT + "4::5::3\n", r"ratings\.dat, line 4: expected 4 '::'"),
        ("ratings.dat", "1::2::3::4::5\n", r"ratings\.dat, line 1: expected 4"),
        ("users.dat", "1::F::x::10::48067\n", r"users\.dat, line 1: age code 'x'"),
        ("movies.dat", "1193 One Flew\n", r"movies\.dat, line 1: expected 3 '::'"),
        ("movies.dat", "abc::T::Drama\n", r"movies\.dat, line 1: movie id 'abc'"),
    ],
)
def test_movielens_1m_malformed(tmp_path, name, text, match):
    write(tmp_path / "ratings.dat", RATINGS_DAT)
    write(tmp_path / name, text, "latin-1")
    with pytest.raises(ValueError, match=match):
        read_movielens_1m(tmp_path / "ratings.dat")


def test_binarize_keeps_timestamps_of_kept_entries(tmp_path):
    data = read_movielens_100k(ml100k(tmp_path))
    pos = data.binarize(3.5)
    assert pos.n_interactions == 1 and pos.matrix.dtype == np.float32
    assert entry(pos, 196, 377) == 1.0 and entry(pos, 196, 242) == 0.0
    assert pos.timestamps[pos.user_index[196], pos.item_index[377]] == 881251000
    assert pos.timestamps.nnz == 1 and pos.user_attributes["age"] is data.user_attributes["age"]
    assert data.binarize(1).n_interactions == 4


def test_interaction_data_validates_its_parts():
    m = sp.csr_matrix(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \(2, 3\) but there are 2 user ids and 2"):
        InteractionData(m, np.arange(2), np.arange(2))
    with pytest.raises(ValueError, match="user attribute 'age' has 1 entries, expected 2"):
        InteractionData(m, np.arange(2), np.arange(3), {"age": np.zeros(1)})
    with pytest.raises(ValueError, match="item ids are not unique"):
        InteractionData(m, np.arange(2), np.array([1, 1, 2]))


# ------------------------------------------------------------------ Last.fm-360K

PLAYS = (
    "00000c28\t3bd73256-3905-4f3a-97e2-8b341527f805\tbetty blowtorch\t2137\n"
    "00000c28\tf2fb0ff0-5679-42ec-a55c-15109ce6e320\tdie Ärzte\t1099\n"
    "00000c28\t\tSigur Rós\t40\n"
    "ffff1111\tf2fb0ff0-5679-42ec-a55c-15109ce6e320\tdie Ärzte\t7\n"
    "ffff1111\t\tdie Ärzte\t3\n"
    "ffff1111\t\t坂本龍一\t12\n"
    "ffff1111\t\t\t5\n"
)
PROFILE = (
    "00000c28\tf\t22\tGermany\tFeb 1, 2007\n"
    "ffff1111\t\t\tUnited States\t\n"
    "aaaa2222\tm\t31\t\tDec 4, 2006\n"
)


def lastfm(tmp_path, plays=PLAYS, profile=PROFILE):
    d = tmp_path / "lastfm-dataset-360K"
    d.mkdir(parents=True)
    write(d / "usersha1-artmbid-artname-plays.tsv", plays)
    if profile is not None:
        write(d / "usersha1-profile.tsv", profile)
    return d


def test_lastfm_by_name_sums_duplicates_and_reads_profiles(tmp_path):
    data = read_lastfm_360k(lastfm(tmp_path))
    assert data.user_ids.tolist() == ["00000c28", "aaaa2222", "ffff1111"]
    assert data.item_ids.tolist() == sorted(
        ["betty blowtorch", "die Ärzte", "Sigur Rós", "坂本龍一"]
    )
    assert entry(data, "ffff1111", "die Ärzte") == 10  # 7 + 3 summed
    assert (
        entry(data, "00000c28", "die Ärzte") == 1099 and entry(data, "ffff1111", "坂本龍一") == 12
    )
    assert data.n_interactions == 5
    assert data.meta["lines_without_artist"] == 1 and data.meta["duplicate_lines_summed"] == 1
    assert data.matrix[data.user_index["aaaa2222"]].nnz == 0  # profile only
    ia = data.item_attributes
    assert ia["mbid"][data.item_index["die Ärzte"]] == "f2fb0ff0-5679-42ec-a55c-15109ce6e320"
    assert ia["mbid"][data.item_index["Sigur Rós"]] == ""
    ua = data.user_attributes
    row = data.user_index["ffff1111"]
    assert ua["gender"][row] == "" and np.isnan(ua["age"][row]) and ua["signup"][row] == ""
    assert ua["country"][row] == "United States"
    assert ua["gender"].tolist() == ["F", "M", ""] and ua["age"][0] == 22


def test_lastfm_by_mbid_and_without_profile(tmp_path):
    data = read_lastfm_360k(lastfm(tmp_path, profile=None), item_key="mbid")
    mbid = "f2fb0ff0-5679-42ec-a55c-15109ce6e320"
    assert entry(data, "ffff1111", mbid) == 7 and entry(data, "ffff1111", "die Ärzte") == 3
    assert data.item_attributes["name"][data.item_index[mbid]] == "die Ärzte"
    assert data.user_attributes["gender"].tolist() == ["", ""]
    assert np.isnan(data.user_attributes["age"]).all()
    with pytest.raises(ValueError, match="item_key must be 'name' or 'mbid'"):
        read_lastfm_360k(lastfm(tmp_path / "x"), item_key="id")


@pytest.mark.parametrize(
    "plays, profile, match",
    [
        (PLAYS + "u1\tm\tname\n", None, r"plays\.tsv, line 8: expected 4 '\\t'-separated"),
        ("u1\t\ta\t12.5\n", None, r"plays\.tsv, line 1: plays '12\.5' is not an integer"),
        ("u1\t\ta\t-3\n", None, r"plays\.tsv, line 1: negative plays -3"),
        ("\t\ta\t3\n", None, r"plays\.tsv, line 1: empty user id"),
        (PLAYS, "u\tm\told\tUK\t\n", r"profile\.tsv, line 1: age 'old' is not an integer"),
        (PLAYS, "u\tm\t20\tUK\n", r"profile\.tsv, line 1: expected 5"),
        (PLAYS, "u\tm\t\t\t\n\nu\tf\t\t\t\n", r"profile\.tsv, line 3: user listed again"),
    ],
)
def test_lastfm_malformed(tmp_path, plays, profile, match):
    with pytest.raises(ValueError, match=match):
        read_lastfm_360k(lastfm(tmp_path, plays, profile) / "usersha1-artmbid-artname-plays.tsv")


def test_lastfm_invalid_utf8_names_the_line(tmp_path):
    d = lastfm(tmp_path)
    f = d / "usersha1-artmbid-artname-plays.tsv"
    f.write_bytes(PLAYS.encode() + b"u2\t\tbad \xff name\t3\n")
    with pytest.raises(ValueError, match=r"plays\.tsv, line 8: not valid utf-8"):
        read_lastfm_360k(d)
