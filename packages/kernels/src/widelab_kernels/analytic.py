"""``kernel_fn``: the infinite-width NNGP and NTK of a network value.

The network's layers are looked up in the rule registry; the input covariance is
``x1 . x2 / C`` per pair of positions (Neural Tangents' convention). The spatial
layout is chosen once for the whole network: all-pairs covariances only if some layer
(pooling, attention) needs them, per-position covariances otherwise.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from widelab_core.layers import Layer, ShapeError

from .kernel import Kernel
from .registry import KernelError, RuleContext, apply_rule, needs_full_spatial

FIELDS = ("nngp", "ntk", "cov1", "cov2")


def _check_get(get) -> tuple[tuple[str, ...] | None, bool]:
    if get is None:
        return None, True
    names = (get,) if isinstance(get, str) else tuple(get)
    for n in names:
        if n not in FIELDS:
            raise ValueError(f"kernel_fn: get must name fields of {FIELDS}, got {n!r}")
    if not names:
        raise ValueError("kernel_fn: get is an empty tuple")
    return names, "ntk" in names


@functools.cache
def _result_type(names: tuple[str, ...]):
    return collections.namedtuple("Kernels", names)


def input_kernel(
    x1: jax.Array,
    x2: jax.Array | None,
    *,
    diagonal_spatial: bool,
    compute_ntk: bool = True,
    mask_constant: float | None = None,
) -> Kernel:
    """The kernel of the raw inputs: ``x1 . x2 / C`` for every (pair of) position(s).

    Args:
        x1: ``(n1, *S, C)`` inputs.
        x2: ``(n2, *S, C)`` inputs or ``None`` (``x2 = x1``).
        diagonal_spatial: keep only same-position covariances.
        compute_ntk: start an NTK (zeros) as well.
        mask_constant: positions whose channels all equal it are padding (zeroed).

    Returns:
        The input :class:`Kernel` (``is_input=True``, not Gaussian).
    """
    same = x2 is None
    mask1 = mask2 = None
    if mask_constant is not None:
        mask1 = jnp.all(x1 == mask_constant, axis=-1)
        x1 = jnp.where(mask1[..., None], jnp.zeros((), x1.dtype), x1)
        if not same:
            mask2 = jnp.all(x2 == mask_constant, axis=-1)
            x2 = jnp.where(mask2[..., None], jnp.zeros((), x2.dtype), x2)
    xb = x1 if same else x2
    c = x1.shape[-1]
    sp1, sp2 = x1.shape[1:-1], xb.shape[1:-1]
    p1, p2 = math.prod(sp1), math.prod(sp2)
    f1 = jnp.reshape(x1, (x1.shape[0], p1, c))
    f2 = jnp.reshape(xb, (xb.shape[0], p2, c))
    if not sp1:
        nngp = (x1 @ xb.T) / c
        cov1 = jnp.sum(x1 * x1, axis=-1) / c
        cov2 = None if same else jnp.sum(x2 * x2, axis=-1) / c
    elif diagonal_spatial:
        nngp = jnp.reshape(jnp.einsum("apc,bpc->abp", f1, f2) / c, (f1.shape[0], f2.shape[0], *sp1))
        cov1 = jnp.sum(x1 * x1, axis=-1) / c
        cov2 = None if same else jnp.sum(x2 * x2, axis=-1) / c
    else:
        nngp = jnp.einsum("apc,bqc->abpq", f1, f2) / c
        nngp = jnp.reshape(nngp, (f1.shape[0], f2.shape[0], *sp1, *sp2))
        cov1 = jnp.reshape(jnp.einsum("apc,aqc->apq", f1, f1) / c, (f1.shape[0], *sp1, *sp1))
        cov2 = None
        if not same:
            cov2 = jnp.reshape(jnp.einsum("apc,aqc->apq", f2, f2) / c, (f2.shape[0], *sp2, *sp2))
    return Kernel(
        nngp=nngp,
        ntk=jnp.zeros_like(nngp) if compute_ntk else None,
        cov1=cov1,
        cov2=cov2,
        mask1=mask1,
        mask2=mask2,
        shape1=tuple(x1.shape),
        shape2=tuple(xb.shape),
        diagonal_spatial=diagonal_spatial or not sp1,
        is_gaussian=False,
        is_input=True,
        x1_is_x2=same,
    )


def _validate(net: Layer, x1, x2) -> None:
    if isinstance(x1, list):
        if x2 is not None and (not isinstance(x2, list) or len(x2) != len(x1)):
            raise ValueError(
                f"kernel_fn: x1 is a list of {len(x1)} inputs, so x2 must be None or a list "
                f"of as many, got {type(x2).__name__}"
            )
        for i, a in enumerate(x1):
            _check_pair(a, None if x2 is None else x2[i], f"[{i}]")
        shapes = [tuple(a.shape) for a in x1]
    else:
        _check_pair(x1, x2, "")
        shapes = tuple(x1.shape)
    try:
        net.output_shape(shapes)
    except ShapeError as e:
        raise KernelError(e.layer, e.detail, e.where) from None


def _check_pair(x1, x2, at: str) -> None:
    if x1.ndim < 2:
        raise ValueError(f"kernel_fn: x1{at} must be (batch, ..., channels), got shape {x1.shape}")
    if x2 is not None and tuple(x2.shape[1:]) != tuple(x1.shape[1:]):
        raise ValueError(
            f"kernel_fn: x1{at} and x2{at} must agree on all axes but the batch axis, got shapes "
            f"{tuple(x1.shape)} and {tuple(x2.shape)}"
        )


#: Kernels with more entries per array than this are computed tile by tile inside the
#: compiled program (see ``KernelFn._tiles``).
TILE_MIN_ENTRIES = 1 << 22
#: Entries per array of one tile: small enough for every layer's intermediates to stay
#: in cache.
TILE_ENTRIES = 1 << 16


def tile_rows(n1: int, n2: int, per_pair: int) -> int | None:
    """Rows per tile for an ``n1 x n2`` kernel with ``per_pair`` entries per pair of
    examples, or ``None`` to evaluate it whole."""
    if n1 * n2 * per_pair < TILE_MIN_ENTRIES:
        return None
    b = max(1, int(math.sqrt(TILE_ENTRIES / per_pair)))
    b = min(b, max(n1, n2))
    if b * 2 > max(n1, n2):  # a single tile would be no better than the whole
        return None
    return b


def mirror_tile(t, k: Kernel):
    """The ``(j, i)`` tile of a symmetric kernel from its ``(i, j)`` tile.

    Swaps the two batch axes and, in the all-pairs spatial layout, the two groups of
    spatial axes as well.
    """
    d = len(k.shape1) - 2
    if k.diagonal_spatial or d == 0:
        return jnp.swapaxes(t, 0, 1)
    perm = (1, 0, *range(2 + d, 2 + 2 * d), *range(2, 2 + d))
    return jnp.transpose(t, perm)


def _shape_of(x) -> tuple[int, ...]:
    return tuple(x.shape)


def _is_kernel(x) -> bool:
    return isinstance(x, Kernel) or (
        isinstance(x, list | tuple) and len(x) > 0 and all(isinstance(k, Kernel) for k in x)
    )


def _as_arrays(x, batch_axis: int = 0, channel_axis: int = -1):
    """Inputs as a jax array with batch first and channels last (a list of them for a
    list or tuple of inputs), or ``None``."""
    if x is None:
        return None
    if isinstance(x, list | tuple):
        return [_as_arrays(a, batch_axis, channel_axis) for a in x]
    x = jnp.asarray(x)
    if (batch_axis, channel_axis) != (0, -1):
        nd = x.ndim
        for name, ax in (("batch_axis", batch_axis), ("channel_axis", channel_axis)):
            if not -nd <= ax < nd:
                raise ValueError(f"kernel_fn: {name}={ax} is out of range for inputs of rank {nd}")
        if batch_axis % nd == channel_axis % nd:
            raise ValueError(
                f"kernel_fn: batch_axis={batch_axis} and channel_axis={channel_axis} are the "
                "same axis"
            )
        x = jnp.moveaxis(x, (batch_axis, channel_axis), (0, -1))
    return x


def _select(k: Any, names: tuple[str, ...] | None):
    if isinstance(k, list):
        return [_select(ki, names) for ki in k]
    if names is None:
        return k
    if len(names) == 1:
        return getattr(k, names[0])
    return _result_type(names)(*(getattr(k, n) for n in names))


class KernelFn:
    """The infinite-width kernel function of a network (see :func:`kernel_fn`)."""

    def __init__(
        self,
        net: Layer,
        *,
        batch_size: int | None = None,
        max_tile_bytes=None,
        jit: bool = True,
        check_finite: bool = True,
    ):
        if not isinstance(net, Layer):
            raise TypeError(f"kernel_fn: expected a layer value, got {net!r}")
        self.net = net
        self.batch_size = batch_size
        self.max_tile_bytes = max_tile_bytes
        self.full_spatial = needs_full_spatial(net)
        self._jitted = jax.jit(self._compute, static_argnames=("names", "mask_constant"))
        # With check_finite, the finiteness of the output is reduced inside the same
        # compiled program (one flag per array), so it costs no separate compilation.
        self._jitted_flagged = jax.jit(
            self._compute_flagged, static_argnames=("names", "mask_constant")
        )
        self.jit = jit
        self.check_finite = check_finite
        self._validated: set = set()
        self._tile_cache: dict = {}
        self._full_twin: KernelFn | None = None
        self._hyper_checked = False

    def _validate(self, x1, x2) -> None:
        """Shape checks, done once per pair of input shapes (re-tracing init is slow)."""
        shape = lambda x: (
            None if x is None else tuple(map(_shape_of, x)) if isinstance(x, list) else x.shape
        )
        key = (shape(x1), shape(x2))
        if key not in self._validated:
            _validate(self.net, x1, x2)
            self._validated.add(key)

    def _compute(self, x1, x2, names, mask_constant, pattern=None):
        compute_ntk = names is None or "ntk" in names
        if isinstance(x1, list):
            k = self.kernel(
                x1, x2, compute_ntk=compute_ntk, mask_constant=mask_constant, pattern=pattern
            )
            return _select(k, names)
        n2 = x1.shape[0] if x2 is None else x2.shape[0]
        spatial = math.prod(x1.shape[1:-1])
        per_pair = spatial**2 if self.full_spatial else spatial
        b = tile_rows(x1.shape[0], n2, per_pair)
        if b is not None:
            out = self._tiles(x1, x2, b, names, compute_ntk, mask_constant, pattern)
            if out is not None:
                return _select(out, names)
        k = self.kernel(
            x1, x2, compute_ntk=compute_ntk, mask_constant=mask_constant, pattern=pattern
        )
        return _select(k, names)

    def _compute_flagged(self, x1, x2, names, mask_constant, pattern=None):
        """``_compute``'s output and whether every floating array in it is finite."""
        out = self._compute(x1, x2, names, mask_constant, pattern)
        flags = [
            jnp.all(jnp.isfinite(v))
            for v in jax.tree_util.tree_leaves(out)
            if hasattr(v, "dtype") and jnp.issubdtype(v.dtype, jnp.floating)
        ]
        return out, jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)

    def _tiles(self, x1, x2, b: int, names, compute_ntk: bool, mask_constant, pattern=None):
        """The kernel assembled from ``b x b`` tiles computed one after another.

        Every kernel entry depends only on its own pair of examples, so the kernel can
        be computed tile by tile (``lax.map``): each tile's intermediates stay in cache
        and peak memory is the output plus one tile. When ``x2`` is None only the
        tiles on and above the diagonal are computed (the diagonal ones as square
        kernels); the others are their mirror images. Per-example fields (``cov1``,
        ``mask1``, ...) are taken from one tile per block. Graph patterns
        ``(pattern1, pattern2)`` are cut into the same blocks as their inputs (with
        ``x2`` None, ``pattern1`` serves both sides). Returns ``None`` for multi-output
        networks.
        """
        n1 = x1.shape[0]
        n2 = n1 if x2 is None else x2.shape[0]
        wanted = set(FIELDS + ("mask1", "mask2") if names is None else names)
        pair = [f for f in ("nngp", "ntk") if f in wanted and (f != "ntk" or compute_ntk)]
        rows_f = [f for f in ("cov1", "mask1") if f in wanted]
        cols_f = [f for f in ("cov2", "mask2") if f in wanted]

        def blocks_of(x):
            m = -(-x.shape[0] // b)
            if m * b > x.shape[0]:  # pad with copies of a real example
                fill = jnp.broadcast_to(x[:1], (m * b - x.shape[0], *x.shape[1:]))
                x = jnp.concatenate([x, fill])
            return jnp.reshape(x, (m, b, *x.shape[1:]))

        def blocks(x, p):
            # (inputs, pattern) blocks; a None pattern stays None
            return jax.tree_util.tree_map(blocks_of, (x, p))

        def tile_kernel(a, c=None):
            (xa, pa), (xc, pc) = a, (None, None) if c is None else c
            pat = None if pa is None else (pa, pa if c is None else pc)
            return self.kernel(
                xa, xc, compute_ntk=compute_ntk, mask_constant=mask_constant, pattern=pat
            )

        def run(fields):
            def fn(a, c=None):
                k = tile_kernel(a, c)
                return {f: getattr(k, f) for f in fields if getattr(k, f) is not None}

            return fn

        def block(xs, i):
            return jax.tree_util.tree_map(lambda v: v[i], xs)

        p1, p2 = (None, None) if pattern is None else pattern
        xs1 = blocks(x1, p1)
        m1 = xs1[0].shape[0]
        template = jax.eval_shape(lambda a: tile_kernel(a), block(xs1, 0))
        if isinstance(template, list):
            return None
        out = {}
        if x2 is not None:
            xs2 = blocks(x2, p2)
            m2 = xs2[0].shape[0]
            rows, cols = (jnp.asarray(i.ravel()) for i in np.indices((m1, m2)))
            tiles = jax.lax.map(
                lambda ij: run(pair + rows_f + cols_f)(block(xs1, ij[0]), block(xs2, ij[1])),
                (rows, cols),
            )
            tiles = {f: jnp.reshape(t, (m1, m2, *t.shape[1:])) for f, t in tiles.items()}
            grid = {f: tiles[f] for f in pair}
            per_row = {f: tiles[f][:, 0] for f in rows_f if f in tiles}
            per_col = {f: tiles[f][0, :] for f in cols_f if f in tiles}
        else:
            upper, lower = np.triu_indices(m1, 1)
            diag = jax.lax.map(lambda a: run(pair + rows_f)(a), xs1)
            off = None
            if len(upper):
                off = jax.lax.map(
                    lambda ij: run(pair)(block(xs1, ij[0]), block(xs1, ij[1])),
                    (jnp.asarray(upper), jnp.asarray(lower)),
                )
            grid = {}
            for f in pair:
                d = diag[f]
                g = jnp.zeros((m1, m1, *d.shape[1:]), d.dtype)
                g = g.at[np.arange(m1), np.arange(m1)].set(d)
                if off is not None:
                    o = off[f]
                    flipped = jax.vmap(lambda t: mirror_tile(t, template))(o)
                    g = g.at[upper, lower].set(o).at[lower, upper].set(flipped)
                grid[f] = g
            per_row = {f: diag[f] for f in rows_f if f in diag}
            per_col = {}
        for f, g in grid.items():
            g = jnp.swapaxes(g, 1, 2)  # (m1, b, m2, b, ...)
            g = jnp.reshape(g, (g.shape[0] * b, g.shape[2] * b, *g.shape[4:]))
            out[f] = g[:n1, :n2]
        for f, v in (*per_row.items(), *per_col.items()):
            n = n1 if f in rows_f else n2
            out[f] = jnp.reshape(v, (v.shape[0] * b, *v.shape[2:]))[:n]
        return template.replace(
            nngp=out.get("nngp"),
            ntk=out.get("ntk"),
            cov1=out.get("cov1"),
            cov2=out.get("cov2"),
            mask1=out.get("mask1"),
            mask2=out.get("mask2"),
            shape1=(n1, *template.shape1[1:]),
            shape2=(n2, *template.shape2[1:]),
            x1_is_x2=x2 is None,
        )

    def kernel(self, x1, x2=None, *, compute_ntk=True, mask_constant=None, pattern=None) -> Any:
        """The output :class:`Kernel` (untiled); ``pattern`` is ``(pattern1, pattern2)``."""
        x1, x2 = _as_arrays(x1), _as_arrays(x2)
        self._validate(x1, x2)
        one = functools.partial(
            input_kernel,
            diagonal_spatial=not self.full_spatial,
            compute_ntk=compute_ntk,
            mask_constant=mask_constant,
        )
        if isinstance(x1, list):
            k = [one(a, None if x2 is None else x2[i]) for i, a in enumerate(x1)]
        else:
            k = one(x1, x2)
        return apply_rule(self.net, k, RuleContext(compute_ntk=compute_ntk, pattern=pattern))

    def __call__(
        self,
        x1,
        x2=None,
        get: str | Sequence[str] | None = None,
        mask_constant: float | None = None,
        *,
        diagonal_batch: bool = True,
        diagonal_spatial: bool | None = None,
        batch_axis: int = 0,
        channel_axis: int = -1,
        pattern: Any = None,
    ):
        names, compute_ntk = _check_get(get)
        if _is_kernel(x1):
            if x2 is not None:
                raise ValueError("kernel_fn: x1 is a Kernel, so x2 must be None")
            pattern = _pattern_pair(pattern, True)
            k = apply_rule(self.net, x1, RuleContext(compute_ntk=compute_ntk, pattern=pattern))
            return _select(k, names)
        pattern = _pattern_pair(pattern, x2 is None)
        x1 = _as_arrays(x1, batch_axis, channel_axis)
        x2 = _as_arrays(x2, batch_axis, channel_axis)
        target = self._layout(diagonal_spatial)
        out = target._call(x1, x2, names, compute_ntk, mask_constant, pattern)
        if diagonal_batch or (names is not None and not {"cov1", "cov2"} & set(names)):
            return out
        return target._full_batch(out, x1, x2, names, mask_constant, pattern)

    def _layout(self, diagonal_spatial: bool | None) -> KernelFn:
        """This function or its twin computing all-pairs spatial covariances."""
        if diagonal_spatial is None or bool(diagonal_spatial) == (not self.full_spatial):
            return self
        if diagonal_spatial:
            raise KernelError(
                self.net,
                "needs covariances between all pairs of spatial positions (pooling, "
                "attention), so diagonal_spatial=True is impossible; use False or None",
            )
        if self._full_twin is None:
            twin = KernelFn(
                self.net,
                batch_size=self.batch_size,
                max_tile_bytes=self.max_tile_bytes,
                jit=self.jit,
                check_finite=self.check_finite,
            )
            twin.full_spatial = True
            self._full_twin = twin
        return self._full_twin

    def _full_batch(self, out, x1, x2, names, mask_constant, pattern=None):
        """``out`` with ``cov1``/``cov2`` as full ``(n, n, ...)`` batch covariances."""
        p1 = p2 = None
        if pattern is not None:
            p1, p2 = (pattern[0], pattern[0]), (pattern[1], pattern[1])
        c1 = self._call(x1, None, ("nngp",), False, mask_constant, p1)
        c2 = None if x2 is None else self._call(x2, None, ("nngp",), False, mask_constant, p2)

        def fix(o, a, b):
            if names is None:
                return o.replace(cov1=a, cov2=b, diagonal_batch=False)
            new = {"cov1": a, "cov2": b}
            if len(names) == 1:
                return new[names[0]]
            return o._replace(**{n: new[n] for n in names if n in new})

        if isinstance(out, list):
            return [
                fix(o, a, None if c2 is None else c2[i]) for i, (o, a) in enumerate(zip(out, c1))
            ]
        return fix(out, c1, c2)

    def _call(self, x1, x2, names, compute_ntk, mask_constant, pattern=None):
        if self.check_finite:
            self._check_inputs_finite(x1, x2, mask_constant)
        label = names[0] if names and len(names) == 1 else "kernel"
        tiled = self.batch_size is not None or self.max_tile_bytes is not None
        if self.check_finite and self.jit and not tiled:
            self._validate(x1, x2)  # errors raise here, outside the trace
            out, finite = self._jitted_flagged(x1, x2, names, mask_constant, pattern)
            if not isinstance(finite, jax.core.Tracer) and not bool(finite):
                _check_output_finite(out, label)  # names the field
            return out
        out = self._evaluate(x1, x2, names, compute_ntk, mask_constant, pattern)
        if self.check_finite:
            _check_output_finite(out, label)
        return out

    def _evaluate(self, x1, x2, names, compute_ntk, mask_constant, pattern=None):
        tiled = self.batch_size is not None or self.max_tile_bytes is not None
        if not tiled:
            if self.jit:
                self._validate(x1, x2)  # errors raise here, outside the trace
                return self._jitted(x1, x2, names, mask_constant, pattern)
            k = self.kernel(
                x1, x2, compute_ntk=compute_ntk, mask_constant=mask_constant, pattern=pattern
            )
            return _select(k, names)
        if isinstance(x1, list):
            raise ValueError("kernel_fn: batch_size tiling takes one input array, not a list")
        return self._tiled(x1, x2, names or ("nngp", "ntk"), compute_ntk, mask_constant, pattern)

    def _tile_fns(self, names: tuple[str, ...], compute_ntk: bool, mask_constant, graphs: bool):
        """``(block, square)`` tile functions, built once per ``(names, mask_constant)`` so
        that ``pairwise_tiled`` finds its compiled rounds in its cache on later calls. With
        ``graphs`` a tile's rows are ``(inputs, pattern)`` pairs."""
        key = (names, compute_ntk, mask_constant, graphs)
        if key not in self._tile_cache:

            def block(a, b):
                pattern = None
                if graphs:
                    a, pa = a
                    b, pb = (None, pa) if b is None else b
                    pattern = (pa, pb)
                k = self.kernel(
                    a, b, compute_ntk=compute_ntk, mask_constant=mask_constant, pattern=pattern
                )
                if isinstance(k, list):
                    raise KernelError(self.net, "tiled evaluation needs a single-output network")
                return {n: getattr(k, n) for n in names}

            self._tile_cache[key] = (block, lambda a: block(a, None))
        return self._tile_cache[key]

    def _check_inputs_finite(self, x1, x2, mask_constant) -> None:
        """Outside a trace: NaN/inf in the inputs (other than the mask constant) or in a
        layer's hyperparameters is an error naming where it is."""
        if not self._hyper_checked:
            found = _nonfinite_hyperparameter(self.net)
            if found is not None:
                layer, name, value = found
                raise ValueError(
                    f"kernel_fn: {layer.describe()} has {name}={value}; layer "
                    "hyperparameters must be finite"
                )
            self._hyper_checked = True
        for name, x in (("x1", x1), ("x2", x2)):
            if x is None or isinstance(x, jax.core.Tracer) or isinstance(x, list | tuple):
                continue
            # Concrete inputs captured by an enclosing trace are checked on the host.
            bad = ~np.isfinite(np.asarray(x))
            if mask_constant is not None:
                bad = bad & (np.asarray(x) != mask_constant)
            if bool(bad.any()):
                where = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"kernel_fn: {name} must be finite, got {float(np.asarray(x)[where])} at "
                    f"index {where} (shape {tuple(np.shape(x))}); kernel_fn(net, "
                    "check_finite=False) skips this check"
                )

    def _tiled(self, x1, x2, names, compute_ntk, mask_constant, pattern=None):
        from widelab_core.devices import pairwise_tiled

        bad = [n for n in names if n not in ("nngp", "ntk")]
        if bad:
            raise ValueError(f"kernel_fn: tiled evaluation returns only nngp/ntk, not {bad}")
        x1 = jnp.asarray(x1)
        x2 = None if x2 is None else jnp.asarray(x2)
        self._validate(x1, x2)
        graphs = pattern is not None
        block, square = self._tile_fns(tuple(names), compute_ntk, mask_constant, graphs)
        d = x1.ndim - 2
        if graphs:  # each example's graph travels with it (x2 None: pattern1 on both sides)
            x1 = (x1, jax.tree_util.tree_map(jnp.asarray, pattern[0]))
            x2 = None if x2 is None else (x2, jax.tree_util.tree_map(jnp.asarray, pattern[1]))
        # Tiles are mirrored in host memory (NumPy), without a trip to the device. A
        # tile with two sets of spatial axes (the output keeps full spatial covariances)
        # swaps those too; pooled or diagonal-spatial outputs swap only the batch axes.
        perm = (1, 0, *range(2 + d, 2 + 2 * d), *range(2, 2 + d))

        def mirror(t):
            if d > 0 and t.ndim == 2 + 2 * d:
                return np.transpose(t, perm)
            return np.swapaxes(t, 0, 1)

        out = pairwise_tiled(
            block,
            x1,
            x2,
            batch_size=self.batch_size,
            max_tile_bytes=self.max_tile_bytes,
            mirror=mirror,
            square_fn=square,
        )
        if len(names) == 1:
            return out[names[0]]
        return _result_type(tuple(names))(*(out[n] for n in names))


def _pattern_pair(pattern, x1_is_x2: bool):
    """``(pattern1, pattern2)`` or ``None`` from ``kernel_fn``'s ``pattern`` argument."""
    if pattern is None:
        return None
    if not isinstance(pattern, list | tuple) or len(pattern) != 2:
        raise ValueError(
            "kernel_fn: pattern must be a pair (pattern1, pattern2), the graphs of the x1 "
            f"and x2 examples, got {type(pattern).__name__}"
        )
    p1, p2 = pattern
    if p1 is None and p2 is None:
        return None
    if p2 is None and x1_is_x2:
        p2 = p1
    if p1 is None or p2 is None:
        raise ValueError(
            "kernel_fn: pattern has one graph given and one None; give both (pattern1, "
            "pattern2), or (pattern1, None) when x2 is None"
        )
    return (p1, p2)


def _nonfinite_hyperparameter(net: Layer):
    """The first ``(layer, field, value)`` whose float hyperparameter is NaN or inf."""
    stack = [net]
    while stack:
        layer = stack.pop()
        for f in dataclasses.fields(layer):
            v = getattr(layer, f.name)
            if isinstance(v, Layer):
                stack.append(v)
            elif isinstance(v, list | tuple):
                stack.extend(u for u in v if isinstance(u, Layer))
            elif isinstance(v, float | np.floating) and not math.isfinite(v):
                return layer, f.name, v
    return None


def _check_output_finite(out, label: str = "kernel") -> None:
    """Outside a trace: a kernel entry that is NaN or inf is an error, never a result."""
    if isinstance(out, list):
        for k in out:
            _check_output_finite(k, label)
        return
    fields = out._asdict() if hasattr(out, "_asdict") else None
    if isinstance(out, Kernel):
        fields = {f: getattr(out, f) for f in FIELDS}
    elif fields is None:
        fields = {label: out}
    for name, v in fields.items():
        if not isinstance(v, jax.Array) or isinstance(v, jax.core.Tracer):
            continue
        if jnp.issubdtype(v.dtype, jnp.floating) and not bool(jnp.all(jnp.isfinite(v))):
            raise ValueError(
                f"kernel_fn: the computed {name} holds NaN or inf although the inputs and "
                "hyperparameters are finite (an overflow: rescale the inputs or W_std/b_std)"
            )


def kernel_fn(
    net: Layer,
    *,
    batch_size: int | None = None,
    max_tile_bytes: int | None = None,
    jit: bool = True,
    check_finite: bool = True,
):
    """The infinite-width kernel function of ``net``.

    Args:
        net: a layer value from ``widelab_core.layers``.
        batch_size: if given, evaluate in ``batch_size x batch_size`` tiles through
            ``widelab_core.devices.pairwise_tiled`` (only the upper triangle when
            ``x2`` is None; tiles spread over all devices, results gathered in host
            memory); memory stays bounded per tile. Without it, kernels with more than
            ``TILE_MIN_ENTRIES`` entries per array are still computed tile by tile, but
            inside the one compiled program (:func:`tile_rows`), which keeps every
            layer's intermediates in cache.
        max_tile_bytes: alternatively, a memory bound per tile.
        jit: compile the whole kernel computation with ``jax.jit`` (one compilation per
            input shape and ``get``; op-by-op execution is far slower to start). It
            composes with an outer ``jit``/``vmap``/``grad``. ``kernel_fn`` called again
            with an equal network (layer values compare by value) returns the same
            function, so its compiled programs, tiled ones included, are reused: a
            second same-shaped call compiles nothing.
        check_finite: before computing, check that the inputs (apart from entries equal
            to ``mask_constant``) and the layers' float hyperparameters (``W_std``,
            ``b_std``, ...) are finite, and after computing that the kernel is; one pass
            over the inputs and the outputs, on concrete values only (under an outer
            ``jit``/``vmap``/``grad`` the arrays are traced and nothing is checked). Pass
            ``False`` to skip it in a hot loop.

    Returns:
        ``f(x1, x2=None, get=None, mask_constant=None)``. ``get`` is ``None`` (the output
        :class:`Kernel`), one of ``"nngp"``, ``"ntk"``, ``"cov1"``, ``"cov2"`` (that array)
        or a tuple of names (a namedtuple with those fields). The NTK is only computed
        when asked for. ``f`` is a pure function of the inputs and of the layers'
        hyperparameters: ``jax.vmap`` and ``jax.grad`` (e.g. with respect to ``W_std``)
        go through it. Networks with ``Aggregate`` layers take the graphs of the two
        batches as ``f(x1, x2, get, pattern=(pattern1, pattern2))`` (``(pattern1, None)``
        when ``x2`` is None), in the format of the layer's ``implementation``.

    Raises:
        KernelError: a layer has no rule or does not fit the inputs (the message names
            the layer, its position and the cause).
        ValueError: with ``check_finite``, NaN or inf in an input, a hyperparameter or
            the computed kernel.

    Example:
        >>> import jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> from widelab_kernels import kernel_fn
        >>> net = L.serial(L.Dense(512, W_std=1.5, b_std=0.05), L.Relu(), L.Dense(1))
        >>> x = jnp.ones((3, 4))
        >>> kernel_fn(net)(x, None, get=("nngp", "ntk")).ntk.shape
        (3, 3)

    Reference:
        Novak et al. 2020, "Neural Tangents: Fast and Easy Infinite Neural Networks in
        Python" (ICLR), Sec. 3 and App. C.
    """
    key = (net, batch_size, max_tile_bytes, jit, check_finite)
    kw = dict(
        batch_size=batch_size, max_tile_bytes=max_tile_bytes, jit=jit, check_finite=check_finite
    )
    try:
        found = _KERNEL_FNS.get(key)
    except TypeError:  # an unhashable layer value (e.g. traced hyperparameters)
        return KernelFn(net, **kw)
    if found is None:
        found = KernelFn(net, **kw)
        if len(_KERNEL_FNS) >= KERNEL_FN_CACHE_SIZE:
            _KERNEL_FNS.pop(next(iter(_KERNEL_FNS)))
        _KERNEL_FNS[key] = found
    return found


#: How many ``kernel_fn`` objects (with their compiled programs) are kept for reuse.
KERNEL_FN_CACHE_SIZE = 64
_KERNEL_FNS: dict = {}
