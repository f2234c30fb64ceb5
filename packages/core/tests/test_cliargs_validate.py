"""The shared argument checks: argparse types, output paths and scalar validators."""

import argparse
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from widelab_core.cliargs import (
    UsageError,
    check_output_dir,
    check_output_file,
    finite_float,
    float_list,
    fraction,
    int_list,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    probability,
    strict_int,
)
from widelab_core.validate import require_finite, require_float, require_int

TYPES = [
    positive_int,
    nonnegative_int,
    finite_float,
    positive_float,
    nonnegative_float,
    probability,
    fraction,
    int_list(),
    float_list(),
]


@pytest.mark.parametrize("parse", TYPES, ids=lambda t: t.__name__)
def test_bad_examples_are_rejected_with_the_value(parse):
    for text in parse.bad_examples:
        with pytest.raises(argparse.ArgumentTypeError) as e:
            parse(text)
        assert "expected" in str(e.value) and repr(text) in str(e.value)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=8))
def test_strict_int_accepts_only_plain_digits(text):
    plain = (
        text != ""
        and all(c in "0123456789" for c in text.lstrip("+-"))
        and len(text) - len(text.lstrip("+-")) <= 1
        and text.lstrip("+-") != ""
    )
    if plain:
        assert strict_int(text) == int(text)
    else:
        with pytest.raises(ValueError, match="is not an integer"):
            strict_int(text)


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)))
def test_float_types_agree_with_their_domain(v):
    text = repr(v)
    finite = math.isfinite(float(v))
    for parse, ok in [
        (finite_float, finite),
        (positive_float, finite and v > 0),
        (nonnegative_float, finite and v >= 0),
        (probability, finite and 0 <= v <= 1),
        (fraction, finite and 0 < v < 1),
    ]:
        if ok:
            assert parse(text) == float(v)
        else:
            with pytest.raises(argparse.ArgumentTypeError):
                parse(text)


def test_lists():
    assert int_list()("3, 4") == [3, 4]
    assert float_list(positive_float)("0.5,2") == [0.5, 2.0]
    with pytest.raises(argparse.ArgumentTypeError, match="in '1,0'"):
        int_list()("1,0")


def test_output_checks(tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    assert check_output_file(tmp_path / "new" / "deeper" / "out.json", "--json")
    assert check_output_dir(tmp_path / "new" / "dir", "--out")
    with pytest.raises(UsageError, match=r"--out .*is a file, so no folder can be made"):
        check_output_dir(blocker / "sub", "--out")
    with pytest.raises(UsageError, match="is a file"):
        check_output_dir(blocker, "--out")
    with pytest.raises(UsageError, match="is a folder; expected a file path"):
        check_output_file(tmp_path, "--out")
    with pytest.raises(UsageError, match="--out is empty"):
        check_output_file("", "--out")
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(UsageError, match="not writable"):
            check_output_file(ro / "x.png", "--figure")


def test_require_int_and_float():
    assert require_int(np.int64(3), "n", min=1) == 3
    with pytest.raises(TypeError, match=r"n must be an integer >= 1, got True"):
        require_int(True, "n", min=1)
    with pytest.raises(TypeError, match="got 2.0"):
        require_int(2.0, "n")
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 3\], got 4"):
        require_int(4, "n", min=1, max=3)
    assert require_float(np.float32(0.5), "p", min=0, max=1) == 0.5
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0, got 0.0"):
        require_float(0, "lr", min=0, min_open=True)
    with pytest.raises(ValueError, match="got nan"):
        require_float(float("nan"), "lr")
    with pytest.raises(TypeError, match="got 'x'"):
        require_float("x", "lr")
    with pytest.raises(TypeError):
        require_float([1.0], "lr")
    with pytest.raises(ValueError, match=r"x must be finite, got inf at index \(1, 0\)"):
        require_finite(np.array([[0.0], [np.inf]]), "x")
