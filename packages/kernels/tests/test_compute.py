"""Out-of-core kernels: exactness, resume after SIGKILL mid-block (bitwise), refusal of
changed settings, the regression sweep, and two jax.distributed processes."""

import os
import subprocess
import sys

import numpy as np
import pytest
from widelab_core.cli import main
from widelab_core.testing import run_local_processes
from widelab_kernels import kernel_fn
from widelab_kernels.compute import KernelSettingsError, compute_kernels, load_kernels
from widelab_kernels.presets import preset
from widelab_kernels.regress import centred_one_hot, kernel_regression

NET = "cnngp-1-flatten"
CLI = "import sys; from widelab_core.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(14)
    path = tmp_path_factory.mktemp("data") / "images.npz"
    np.savez(
        path,
        x_train=rng.normal(size=(8, 4, 4, 2)).astype(np.float32),
        y_train=rng.integers(0, 3, 8),
        x_test=rng.normal(size=(4, 4, 4, 2)).astype(np.float32),
        y_test=rng.integers(0, 3, 4),
    )
    return path


def _args(data, out, *extra):
    return ["kernels", "compute", "--net", NET, "--data", str(data), "--format", "npz",
            "--batch-size", "2", "--tile", "4", "--out", str(out), *extra]  # fmt: skip


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted run through the command (5 blocks: 3 train, 2 test)."""
    out = tmp_path_factory.mktemp("ref")
    assert main(_args(data, out)) == 0
    return out, {k: np.array(v) for k, v in load_kernels(out).items()}


def _log_lines(out):
    return sorted(line for log in out.glob("done-*.log") for line in log.read_text().splitlines())


def test_blocks_equal_the_kernel_in_one_piece(data, reference):
    out, k = reference
    z = np.load(out / "labels.npz")
    assert z["y_train"].shape == (8,) and set(k) == {
        "nngp_train_train", "nngp_test_train", "ntk_train_train", "ntk_test_train"
    }  # fmt: skip
    # the same preprocessing the command applies, then the kernel in one call
    from widelab_core.datasets import standardize_channels

    for g in ("nngp", "ntk"):
        t = k[f"{g}_train_train"]
        assert (t == t.T).all()  # lower triangle mirrored exactly
    src = np.load(data)
    x_tr, x_te = standardize_channels(
        src["x_train"].astype(np.float64), src["x_test"].astype(np.float64)
    )
    want = kernel_fn(preset(NET))(x_tr.astype(np.float32), None, get=("nngp", "ntk"))
    cross = kernel_fn(preset(NET))(x_te.astype(np.float32), x_tr.astype(np.float32), get="ntk")
    np.testing.assert_allclose(k["nngp_train_train"], want.nngp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(k["ntk_train_train"], want.ntk, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(k["ntk_test_train"], cross, rtol=1e-5, atol=1e-6)
    assert len(_log_lines(out)) == 5


def test_sigkill_and_sigint_mid_block_then_resume_is_bitwise_equal(
    data, reference, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "k"
    env = dict(os.environ, WIDELAB_KERNELS_CRASH_AFTER="1:1")  # 2nd block, after 1 row
    p = subprocess.run(
        [sys.executable, "-c", CLI, *_args(data, out)], env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == -9, p.stderr
    assert _log_lines(out) == ["train 0 0"]  # the killed block is not marked done
    with pytest.raises(ValueError, match="not finished; run the same"):
        load_kernels(out)
    # resumed, then Ctrl-C in the middle of the second block it computes
    monkeypatch.setenv("WIDELAB_KERNELS_CRASH_AFTER", "1:2:INT")
    assert main(_args(data, out)) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    assert _log_lines(out) == ["train 0 0", "train 0 1"]
    monkeypatch.delenv("WIDELAB_KERNELS_CRASH_AFTER")
    assert main(_args(data, out)) == 0
    lines = _log_lines(out)
    assert len(lines) == len(set(lines)) == 5  # no finished block was computed twice
    for name, want in reference[1].items():
        got = load_kernels(out)[name]
        assert got.tobytes() == want.tobytes(), name


def test_other_settings_are_refused_with_the_differences(data, reference, capsys, tmp_path):
    out = reference[0]
    assert main(_args(data, out, "--get", "nngp", "--n-train", "6")) == 2
    err = capsys.readouterr().err
    assert "holds kernels computed with other settings" in err
    assert "get: ['nngp', 'ntk'] in the folder, ['nngp'] now" in err
    assert "n_train: 8 in the folder, 6 now" in err
    x = np.zeros((4, 4, 4, 2), np.float32)
    with pytest.raises(KernelSettingsError, match="net: 'cnngp-1-flatten' in the folder"):
        compute_kernels("cnngp-2-pool", x, x, out, batch_size=2, tile=4)
    with pytest.raises(ValueError, match=r"tile \(3\) must be a multiple of batch_size \(2\)"):
        compute_kernels(NET, x, x, out, batch_size=2, tile=3)
    # no test images: only the train x train files
    m = compute_kernels(NET, x, x[:0], tmp_path, batch_size=2, tile=4, progress=False)
    assert m["complete"] and sorted(load_kernels(tmp_path)) == [
        "nngp_train_train",
        "ntk_train_train",
    ]


def test_regression_sweep_matches_direct_solve(data, reference, capsys):
    out, k = reference
    z = np.load(out / "labels.npz")
    kt, ks = k["ntk_train_train"].astype(np.float64), k["ntk_test_train"].astype(np.float64)
    rows = kernel_regression(kt, ks, z["y_train"], z["y_test"], [0.0, 0.5], rows_per_block=3)
    for row in rows:
        lam = row["reg"] * np.mean(np.diag(kt))
        pred = ks @ np.linalg.solve(kt + lam * np.eye(8), centred_one_hot(z["y_train"], 3))
        mse = np.mean((pred - centred_one_hot(z["y_test"], 3)) ** 2)
        acc = np.mean(pred.argmax(1) == z["y_test"])
        assert row["mse"] == pytest.approx(mse, rel=1e-6) and row["accuracy"] == acc
    assert main(["kernels", "regress", "--kernels", str(out), "--reg", "0.001,1"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["kernel", "reg", "accuracy", "mse"] and len(printed) == 5
    args = ["kernels", "regress", "--kernels", str(out), "--data", str(data), "--reg", "0.1"]
    assert main(args) == 0 and len(capsys.readouterr().out.splitlines()) == 3
    with pytest.raises(ValueError, match=r"labels must be .* in \[0, 3\)"):
        centred_one_hot([0, 3], 3)


def test_progress_lines_off_a_terminal(capsys):
    from widelab_kernels._progress import Progress

    bar = Progress(5, 1, True, 0.0, "kernels compute")
    bar.update(1)
    bar.close()
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "kernels compute: resuming, 1/5 blocks already done"
    assert err[1].startswith("kernels compute: 2/5 blocks (40%), ") and "left" in err[1]
    assert len(err) == 2  # close() does not repeat an up-to-date line


_DIST = """
import sys
from widelab_core.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_two_processes_split_the_blocks_and_agree_bitwise(data, reference, tmp_path):
    """Two jax.distributed CPU processes (2 devices each) write their own blocks of one
    folder; the result is the single-process one, bit for bit."""
    out = tmp_path / "k"
    done = run_local_processes(
        lambda rank, coord: [
            "-c",
            _DIST,
            *_args(data, out),
            "--coordinator",
            coord,
            "--num-processes",
            "2",
            "--process-id",
            str(rank),
        ]
    )
    for code, text in done:
        assert code == 0, text
    assert len((out / "done-0.log").read_text().splitlines()) == 3
    assert len((out / "done-1.log").read_text().splitlines()) == 2
    for name, want in reference[1].items():
        assert load_kernels(out)[name].tobytes() == want.tobytes(), name
