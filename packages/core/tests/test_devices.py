"""Tiled pairwise evaluation: exact agreement with the untiled function on 1 and 8 devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from widelab_core.devices import (
    DistributedInfo,
    global_mesh,
    initialize_distributed,
    local_mesh,
    pairwise_tiled,
    tile_bytes,
)


def _ints(seed, n, d=3):
    """Integer-valued float64 rows: every sum and product is exact, so any grouping of
    the arithmetic gives the same bits and the comparison below can be bitwise."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.integers(-9, 10, size=(n, d)).astype(np.float64))


def _reals(seed, n, d=3):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(n, d)))


def gram(a, b):
    return a @ b.T


def rbf(a, b):
    """Elementwise-only Gaussian kernel (no matrix product): bitwise tile-independent."""
    diff = a[:, None, :] - b[None, :, :]
    return jnp.exp(-0.5 * (diff[..., 0] ** 2 + diff[..., 1] ** 2 + diff[..., 2] ** 2))


def mesh_of(n_devices):
    return Mesh(np.asarray(jax.devices()[:n_devices]), ("tiles",))


def assert_bitwise(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_eight_fake_devices_are_present():
    assert jax.device_count() == 8
    assert global_mesh().size == 8 and local_mesh("x").axis_names == ("x",)


@pytest.mark.parametrize("n_devices", [1, 8])
@pytest.mark.parametrize(
    "n1, n2, batch_size",
    [(13, None, 4), (13, 13, 5), (17, 6, 4), (5, 19, 3), (9, None, 9), (6, 11, 100)],
)
def test_tiled_equals_untiled_exactly(n_devices, n1, n2, batch_size):
    with jax.enable_x64(True):
        x1 = _ints(0, n1)
        x2 = None if n2 is None else _ints(1, n2)
        mesh = mesh_of(n_devices)
        for fn, a, b in [(gram, x1, x2), (rbf, x1 / 7, None if x2 is None else x2 / 7)]:
            got = pairwise_tiled(fn, a, b, batch_size=batch_size, mesh=mesh)
            assert_bitwise(got, jax.jit(fn)(a, a if b is None else b))


def test_elementwise_real_data_and_float32():
    """Real-valued data: the elementwise kernel is still bitwise equal to the untiled
    compiled one, in both dtypes."""
    x1, x2 = _reals(2, 21), _reals(3, 10)
    assert_bitwise(pairwise_tiled(rbf, x1, x2, batch_size=4), jax.jit(rbf)(x1, x2))
    with jax.enable_x64(True):
        y1 = _reals(2, 21)
        assert y1.dtype == jnp.float64
        assert_bitwise(pairwise_tiled(rbf, y1, None, batch_size=6), jax.jit(rbf)(y1, y1))


def test_matrix_product_of_real_data_agrees_to_rounding():
    with jax.enable_x64(True):
        x1, x2 = _reals(4, 30, 7), _reals(5, 11, 7)
        got = pairwise_tiled(gram, x1, x2, batch_size=7)
        np.testing.assert_allclose(got, gram(x1, x2), rtol=0, atol=1e-13)


def test_upper_triangle_only_is_computed_and_mirrored():
    """fn(a, b)[p, q] = a_p - 2 b_q is not symmetric: with x2=None the tiles below the
    diagonal must be the transposes of those above, proving they were not computed."""
    x = jnp.arange(10.0)[:, None]
    fn = lambda a, b: a[:, None, 0] - 2 * b[None, :, 0]
    b = 4
    got = np.asarray(pairwise_tiled(fn, x, batch_size=b))
    full = np.asarray(fn(x, x))
    blk = np.arange(10) // b
    upper = blk[:, None] <= blk[None, :]
    np.testing.assert_array_equal(got[upper], full[upper])
    np.testing.assert_array_equal(got[~upper], full.T[~upper])
    assert not np.array_equal(got, full)
    # x2 given (even with equal values): every tile is computed.
    np.testing.assert_array_equal(pairwise_tiled(fn, x, x + 0, batch_size=b), full)


@pytest.mark.parametrize("n_devices", [1, 8])
def test_square_fn_computes_the_diagonal_tiles(n_devices):
    """With ``square_fn`` the tiles on the diagonal come from it, all others from fn."""
    x = jnp.arange(10.0)[:, None]
    fn = lambda a, b: a[:, None, 0] + b[None, :, 0]
    square = lambda a: 100.0 + a[:, None, 0] + a[None, :, 0]
    b = 4
    got = np.asarray(pairwise_tiled(fn, x, batch_size=b, square_fn=square, mesh=mesh_of(n_devices)))
    blk = np.arange(10) // b
    same = blk[:, None] == blk[None, :]
    full = np.asarray(fn(x, x))
    np.testing.assert_array_equal(got[same], full[same] + 100.0)
    np.testing.assert_array_equal(got[~same], full[~same])
    # x2 given: square_fn is not used.
    np.testing.assert_array_equal(
        pairwise_tiled(fn, x, x + 0, batch_size=b, square_fn=square), full
    )


@pytest.mark.parametrize("n_devices", [1, 8])
def test_pytree_inputs_and_outputs_with_trailing_dims_and_custom_mirror(n_devices):
    with jax.enable_x64(True):
        rng = np.random.default_rng(6)
        x = {"u": _ints(7, 11), "w": jnp.asarray(rng.integers(0, 5, size=11).astype(float))}

        def fn(a, b):
            diff = a["u"][:, None, :] - b["u"][None, :, :]  # (b1, b2, 3): antisymmetric
            outer = a["u"][:, None, :, None] * b["u"][None, :, None, :]  # (b1, b2, 3, 3)
            return {
                "diff": diff,
                "pair": (outer, a["w"][:, None] + b["w"][None, :]),
            }

        def mirror(t):
            if t.ndim == 3:
                return -np.swapaxes(t, 0, 1)
            if t.ndim == 4:
                return t.transpose(1, 0, 3, 2)
            return t.T

        want = fn(x, x)
        got = pairwise_tiled(fn, x, None, batch_size=3, mirror=mirror, mesh=mesh_of(n_devices))
        assert jax.tree.structure(got) == jax.tree.structure(want)
        jax.tree.map(assert_bitwise, got, want)
        # The default mirror (swap axes 0, 1 only) is wrong for this fn: a check that can fail.
        wrong = pairwise_tiled(fn, x, None, batch_size=3, mesh=mesh_of(n_devices))
        assert not np.array_equal(wrong["diff"], want["diff"])


def test_two_dimensional_mesh_uses_every_axis():
    with jax.enable_x64(True):
        mesh = Mesh(np.asarray(jax.devices()).reshape(2, 4), ("a", "b"))
        x1, x2 = _ints(8, 14), _ints(9, 9)
        assert_bitwise(pairwise_tiled(gram, x1, x2, batch_size=2, mesh=mesh), gram(x1, x2))


def test_every_call_sees_full_tiles():
    """Edge tiles are padded: fn only ever sees blocks of the tile size (one compile)."""
    seen = []

    def fn(a, b):
        seen.append((a.shape, b.shape))
        return a @ b.T

    x1, x2 = _reals(10, 10), _reals(11, 7)
    pairwise_tiled(fn, x1, x2, batch_size=4)
    assert seen and set(seen) == {((4, 3), (4, 3))}


def test_memory_bound_picks_smaller_tiles():
    x = jnp.zeros((40, 3), jnp.float32)
    seen = []

    def fn(a, b):
        seen.append(a.shape[0])
        return a @ b.T

    # One float32 tile of edge b: 4 b^2 output bytes + 2 * 12 b input bytes.
    for bound, edge in [(10_000, 40), (4 * 20**2 + 24 * 20, 20), (4 * 20**2 + 24 * 20 - 1, 19)]:
        seen.clear()
        pairwise_tiled(fn, x, max_tile_bytes=bound)
        assert seen[-1] == edge, (bound, seen)
        assert tile_bytes(fn, x, batch_size=edge) <= bound
        if edge < 40:
            assert tile_bytes(fn, x, batch_size=edge + 1) > bound
    # Both given: the smaller edge wins.
    seen.clear()
    pairwise_tiled(fn, x, batch_size=8, max_tile_bytes=10_000)
    assert seen[-1] == 8
    # Rectangular with few columns: rows take the freed memory.
    y = jnp.zeros((2, 3), jnp.float32)
    seen.clear()
    pairwise_tiled(fn, x, y, max_tile_bytes=4 * 10 * 2 + 12 * 10 + 12 * 2)
    assert seen[-1] == 10


def test_empty_inputs_and_progress_bar_silent_off_terminal(capsys):
    x = jnp.ones((4, 2))
    out = pairwise_tiled(lambda a, b: a[:, None, :] * b[None, :, :], x, jnp.ones((0, 2)))
    assert out.shape == (4, 0, 2)
    k = pairwise_tiled(gram, x, batch_size=1, progress=True)
    assert_bitwise(k, gram(x, x))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "kwargs, x2, match",
    [
        ({}, jnp.ones((3, 4)), "feature shapes differ"),
        ({}, {"a": jnp.ones((3, 2))}, "different pytrees"),
        ({"batch_size": 0}, None, "batch_size must be a positive integer"),
        ({"batch_size": -3}, None, "batch_size must be a positive integer"),
        ({"batch_size": 2.5}, None, "batch_size must be a positive integer"),
        ({"batch_size": True}, None, "batch_size must be a positive integer"),
        ({"max_tile_bytes": 0}, None, "max_tile_bytes must be a positive integer"),
        ({"max_tile_bytes": 10}, None, "even a 1 x 1 tile needs"),
    ],
)
def test_bad_input_errors(kwargs, x2, match):
    with pytest.raises(ValueError, match=match):
        pairwise_tiled(gram, jnp.ones((5, 2)), x2, **kwargs)


def test_bad_shapes_errors():
    with pytest.raises(ValueError, match=r"x1\['b'\].*leading dimension 5"):
        pairwise_tiled(gram, {"a": jnp.ones((5, 2)), "b": jnp.ones((4, 2))})
    with pytest.raises(ValueError, match="is a scalar"):
        pairwise_tiled(gram, jnp.float32(1.0))
    with pytest.raises(ValueError, match=r"leaves of shape \(b1, b2, ...\)"):
        pairwise_tiled(lambda a, b: a.sum(0), jnp.ones((5, 2)), batch_size=2)
    with pytest.raises(ValueError, match="mirror must map"):
        pairwise_tiled(gram, jnp.ones((5, 2)), batch_size=2, mirror=lambda t: t[:1])


_WORKER = """
import sys
import jax
import jax.numpy as jnp
import numpy as np
from widelab_core.devices import initialize_distributed, pairwise_tiled

info = initialize_distributed(sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
with jax.enable_x64(True):
    rng = np.random.default_rng(0)  # same data on both processes
    x1 = jnp.asarray(rng.integers(-9, 10, size=(11, 3)).astype(np.float64))
    x2 = jnp.asarray(rng.integers(-9, 10, size=(7, 3)).astype(np.float64))
    gram = lambda a, b: a @ b.T
    sq = pairwise_tiled(gram, x1, batch_size=3)
    rect = pairwise_tiled(gram, x1, x2, batch_size=2)
    ok = bool((np.asarray(sq) == np.asarray(x1 @ x1.T)).all()) and bool(
        (np.asarray(rect) == np.asarray(x1 @ x2.T)).all())
print("RESULT", tuple(info), ok, flush=True)
"""


@pytest.mark.slow
def test_two_processes_with_jax_distributed(tmp_path):
    """Two CPU processes with 2 devices each form one 4-device job through
    initialize_distributed; the default mesh spans both and each gets the full result."""
    from widelab_core.testing import run_local_processes

    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    done = run_local_processes(lambda rank, coord: [str(script), coord, str(rank)], timeout=120)
    for rank, (code, out) in enumerate(done):
        assert code == 0, out
        assert f"RESULT ({rank}, 2, 2, 4) True" in out, out


def test_initialize_distributed_is_idempotent_when_already_initialized(monkeypatch):
    """Once jax.distributed is up, a second call only reports where this process stands."""
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: True)

    def fail(**kwargs):
        raise AssertionError("must not initialize twice")

    monkeypatch.setattr(jax.distributed, "initialize", fail)
    info = initialize_distributed("localhost:1", num_processes=2, process_id=0)
    assert isinstance(info, DistributedInfo)
    assert info == (0, 1, 8, 8)


def test_result_buffers_are_aligned_so_they_are_not_copied():
    from widelab_core.devices import _aligned_empty

    for shape, dtype in (((3, 5), np.float32), ((1000, 300), np.float64), ((7, 2, 3), bool)):
        a = _aligned_empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        assert a.ctypes.data % 64 == 0
    # On CPU an aligned host buffer becomes a jax array without a copy.
    a = _aligned_empty((64, 64), np.float32)
    a[:] = 1.0
    b = jax.device_put(a, may_alias=True)
    a[0, 0] = 7.0
    if jax.default_backend() == "cpu":
        assert float(b[0, 0]) == 7.0
