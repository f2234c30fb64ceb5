"""Empirical (finite-width) NTK and NNGP, and their Monte Carlo averages over draws.

Owned by the kernels-predict engineer; import from here rather than rewriting.

For a network ``f(params, x)`` with outputs ``(n, *O)``:

* the empirical NNGP is ``f(x1) f(x2)^T`` and the empirical NTK is
  ``J(x1) J(x2)^T`` with ``J = df/dparams`` (Jacot et al. 2018, eq. 2; Novak et al.
  2020, Neural Tangents, Sec. 3);
* over each axis in ``trace_axes`` the kernel is *averaged* (trace divided by the axis
  size, so a readout of width ``k`` gives the per-output kernel); of each axis in
  ``diagonal_axes`` only the diagonal is kept (one axis instead of two);
* the result has, for every output axis in order (the batch axis first), one axis if
  it is diagonal, none if traced, and two (``x1``'s, then ``x2``'s) otherwise:
  ``(n1, n2)`` for ``(n, k)`` outputs with the defaults, ``(n1, n2, k, k)`` with
  ``trace_axes=()``, ``(n,)`` with ``diagonal_axes=(0,)``. This is Neural Tangents'
  layout.

These functions only need ``init``/``apply``, so they work for every
``widelab_core.layers`` network (``net.init``, ``net.apply``) and for any JAX function
of the form ``apply_fn(params, x, **kwargs)``. Only public JAX APIs are used.
"""

from __future__ import annotations

import collections
import functools
import string
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

ApplyFn = Callable[..., jax.Array]
InitFn = Callable[[jax.Array, tuple[int, ...]], tuple[Any, Any]]

IMPLEMENTATIONS = ("jacobian_contraction", "ntk_vector_products")
_GETS = ("nngp", "ntk")


def _check_implementation(implementation: str, where: str) -> None:
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"{where}: implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}"
        )


def _names(get, where: str) -> tuple[str, ...]:
    names = _GETS if get is None else ((get,) if isinstance(get, str) else tuple(get))
    if not names or any(g not in _GETS for g in names):
        raise ValueError(f"{where}: get must be 'nngp', 'ntk' or a tuple of them, got {get!r}")
    return names


@functools.cache
def _result_type(names: tuple[str, ...]):
    return collections.namedtuple("EmpiricalKernels", names)


def _select(get, values: dict) -> Any:
    if isinstance(get, str):
        return values[get]
    names = tuple(values) if get is None else tuple(get)
    return _result_type(names)(*(values[g] for g in names))


def _canonical(axes, ndim: int, name: str, where: str) -> tuple[int, ...]:
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    out = set()
    for a in axes:
        if not -ndim <= int(a) < ndim:
            raise ValueError(
                f"{where}: {name} entry {a} is out of range for outputs of rank {ndim}"
            )
        out.add(int(a) % ndim)
    return tuple(sorted(out))


def _spec(shape1, shape2, trace_axes, diagonal_axes, where: str):
    """Einsum subscripts pairing the output axes of ``x1`` and ``x2``.

    Returns ``(s1, s2, out, trace_size)``: traced axes share a letter and are summed,
    diagonal axes share a letter that is kept once, other axes get two letters.
    """
    ndim = len(shape1)
    if len(shape2) != ndim:
        raise ValueError(f"{where}: outputs on x1 {shape1} and x2 {shape2} differ in rank")
    trace = _canonical(trace_axes, ndim, "trace_axes", where)
    diag = _canonical(diagonal_axes, ndim, "diagonal_axes", where)
    if set(trace) & set(diag):
        raise ValueError(f"{where}: trace_axes {trace} and diagonal_axes {diag} overlap")
    letters = iter(string.ascii_letters)
    s1, s2, out, size = [], [], [], 1
    for i in range(ndim):
        a = next(letters)
        if i in trace or i in diag:
            if shape1[i] != shape2[i]:
                kind = "trace_axes" if i in trace else "diagonal_axes"
                raise ValueError(
                    f"{where}: output axis {i} is in {kind} but has size {shape1[i]} on x1 "
                    f"and {shape2[i]} on x2 (output shapes {shape1} and {shape2})"
                )
            s1.append(a)
            s2.append(a)
            if i in trace:
                size *= shape1[i]
            else:
                out.append(a)
        else:
            b = next(letters)
            s1.append(a)
            s2.append(b)
            out.extend([a, b])
    return "".join(s1), "".join(s2), "".join(out), size


def _outputs(apply_fn, params, x1, x2, kwargs):
    f1 = lambda p: apply_fn(p, x1, **kwargs)
    f2 = f1 if x2 is None else (lambda p: apply_fn(p, x2, **kwargs))
    return f1, f2


def _ntk_jacobian_contraction(f1, f2, same, params, spec):
    s1, s2, out, size = spec
    j1 = jax.jacrev(f1)(params)
    j2 = j1 if same else jax.jacrev(f2)(params)
    leaves1, leaves2 = jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2)
    if not leaves1:
        raise ValueError("empirical_ntk_fn: the network has no parameters")
    total = None
    spare = [c for c in string.ascii_letters if c not in s1 + s2]
    for l1, l2 in zip(leaves1, leaves2):
        p = "".join(spare[: l1.ndim - len(s1)])
        term = jnp.einsum(f"{s1}{p},{s2}{p}->{out}", l1, l2)
        total = term if total is None else total + term
    return total / size


def _ntk_vector_products(f1, f2, params, spec):
    s1, s2, out, size = spec
    out2, vjp2 = jax.vjp(f2, params)
    _, jvp1 = jax.linearize(f1, params)
    basis = jnp.reshape(jnp.eye(out2.size, dtype=out2.dtype), (out2.size, *out2.shape))

    def column(cotangent):
        (tangent,) = vjp2(cotangent)
        return jvp1(tangent)  # Theta(x1, x2) e_j: shape of f(x1)

    cols = jax.vmap(column)(basis)  # (size2, *out1)
    full = jnp.reshape(cols, out2.shape + cols.shape[1:])  # (*out2, *out1)
    return jnp.einsum(f"{s2}{s1}->{out}", full) / size


def empirical_ntk_fn(
    apply_fn: ApplyFn,
    trace_axes: Sequence[int] = (-1,),
    diagonal_axes: Sequence[int] = (),
    implementation: str = "jacobian_contraction",
) -> Callable[..., jax.Array]:
    r"""The empirical NTK ``J(x1) J(x2)^T`` of a finite network.

    ``Theta(x1, x2) = sum_p df(x1)/dp df(x2)/dp`` over all parameters ``p`` (Jacot et
    al. 2018, eq. 2), averaged over ``trace_axes`` and diagonal in ``diagonal_axes``
    (layout in the module docstring). Two implementations with equal results:

    * ``"jacobian_contraction"``: ``jax.jacrev`` of the whole batch, then one einsum per
      parameter leaf contracting the parameter axes. Memory ``~ outputs x parameters``.
    * ``"ntk_vector_products"``: no Jacobian is stored; column ``j`` of the NTK is
      ``J(x1) (J(x2)^T e_j)``, a VJP followed by a JVP (of ``jax.linearize``), vmapped
      over all output entries of ``x2``. Memory ``~ outputs^2 + parameters``; better
      when parameters far outnumber outputs.

    Args:
        apply_fn: ``apply_fn(params, x, **kwargs) -> (n, *O)`` (e.g. ``net.apply``).
        trace_axes: output axes to average over (default: the channel axis).
        diagonal_axes: output axes of which only the diagonal is kept (e.g. ``(0,)``).
        implementation: ``"jacobian_contraction"`` or ``"ntk_vector_products"``.

    Returns:
        ``ntk_fn(x1, x2, params, **kwargs)``; ``x2=None`` means ``x2 = x1``; ``kwargs``
        go to ``apply_fn``. Jit it yourself (``jax.jit(ntk_fn)``) for repeated use.

    Raises:
        ValueError: unknown implementation, overlapping or out-of-range axes, traced or
            diagonal axes of different sizes on ``x1`` and ``x2``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> net = L.serial(L.Dense(8), L.Relu(), L.Dense(2))
        >>> _, params = net.init(jax.random.key(0), (3, 4))
        >>> empirical_ntk_fn(net.apply)(jnp.ones((3, 4)), None, params).shape
        (3, 3)
    """
    _check_implementation(implementation, "empirical_ntk_fn")

    def ntk_fn(x1, x2, params, **kwargs):
        f1, f2 = _outputs(apply_fn, params, x1, x2, kwargs)
        o1 = jax.eval_shape(f1, params).shape
        o2 = o1 if x2 is None else jax.eval_shape(f2, params).shape
        spec = _spec(o1, o2, trace_axes, diagonal_axes, "empirical_ntk_fn")
        if implementation == "jacobian_contraction":
            return _ntk_jacobian_contraction(f1, f2, x2 is None, params, spec)
        return _ntk_vector_products(f1, f2, params, spec)

    return ntk_fn


def empirical_nngp_fn(
    apply_fn: ApplyFn,
    trace_axes: Sequence[int] = (-1,),
    diagonal_axes: Sequence[int] = (),
) -> Callable[..., jax.Array]:
    r"""The empirical NNGP ``f(x1) f(x2)^T / |traced|`` of a finite network.

    Its average over random initialisations is the NNGP covariance ``E[f(x1) f(x2)]``
    (Neal 1996; Lee et al. 2018, eq. 4); a single wide readout already averages over
    its ``k`` i.i.d. outputs.

    Args:
        apply_fn: ``apply_fn(params, x, **kwargs) -> (n, *O)``.
        trace_axes: output axes to average over (default: the channel axis).
        diagonal_axes: output axes of which only the diagonal is kept.

    Returns:
        ``nngp_fn(x1, x2, params, **kwargs)`` (``x2=None``: ``x1``).

    Raises:
        ValueError: bad axes (see :func:`empirical_ntk_fn`).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> net = L.Dense(2)
        >>> _, params = net.init(jax.random.key(0), (3, 4))
        >>> empirical_nngp_fn(net.apply, diagonal_axes=(0,))(jnp.ones((3, 4)), None, params).shape
        (3,)
    """

    def nngp_fn(x1, x2, params, **kwargs):
        y1 = apply_fn(params, x1, **kwargs)
        y2 = y1 if x2 is None else apply_fn(params, x2, **kwargs)
        s1, s2, out, size = _spec(
            y1.shape, y2.shape, trace_axes, diagonal_axes, "empirical_nngp_fn"
        )
        return jnp.einsum(f"{s1},{s2}->{out}", y1, y2) / size

    return nngp_fn


def empirical_kernel_fn(
    apply_fn: ApplyFn,
    trace_axes: Sequence[int] = (-1,),
    diagonal_axes: Sequence[int] = (),
    implementation: str = "jacobian_contraction",
) -> Callable[..., Any]:
    """Empirical NNGP and NTK together, selected by ``get`` (as ``kernel_fn`` does).

    Args:
        apply_fn: ``apply_fn(params, x, **kwargs) -> (n, *O)``.
        trace_axes: output axes to average over.
        diagonal_axes: output axes of which only the diagonal is kept.
        implementation: NTK implementation (see :func:`empirical_ntk_fn`).

    Returns:
        ``kernel_fn(x1, x2=None, get=None, params=None, **kwargs)``: an array for a single
        name, a named tuple with fields in ``get`` order for a tuple, ``(nngp, ntk)`` for
        ``get=None``.

    Raises:
        ValueError: unknown ``get``, missing ``params``, bad axes.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> net = L.serial(L.Dense(8), L.Relu(), L.Dense(1))
        >>> _, params = net.init(jax.random.key(0), (2, 3))
        >>> k = empirical_kernel_fn(net.apply)(jnp.ones((2, 3)), None, params=params)
        >>> k.nngp.shape, k.ntk.shape
        ((2, 2), (2, 2))
    """
    nngp = empirical_nngp_fn(apply_fn, trace_axes, diagonal_axes)
    ntk = empirical_ntk_fn(apply_fn, trace_axes, diagonal_axes, implementation)
    fns = {"nngp": nngp, "ntk": ntk}

    def kernel_fn(x1, x2=None, get=None, params=None, **kwargs):
        names = _names(get, "empirical_kernel_fn")
        if params is None:
            raise ValueError("empirical_kernel_fn: pass the network's params=")
        return _select(get, {g: fns[g](x1, x2, params, **kwargs) for g in names})

    return kernel_fn


def monte_carlo_kernel_fn(
    init_fn: InitFn,
    apply_fn: ApplyFn,
    key: jax.Array,
    n_samples: int,
    batch_size: int = 1,
    trace_axes: Sequence[int] = (-1,),
    diagonal_axes: Sequence[int] = (),
    implementation: str = "jacobian_contraction",
) -> Callable[..., Any]:
    r"""Monte Carlo NNGP and NTK: empirical kernels averaged over random initialisations.

    ``K_hat = (1 / S) sum_s k(x1, x2; params_s)`` with ``params_s`` drawn by
    ``init_fn(keys[s], x1.shape)``, ``keys = jax.random.split(key, n_samples)`` (Novak et
    al. 2020, Neural Tangents, Sec. 3). As the widths grow it converges to the analytic
    kernel; its standard error shrinks as ``1 / sqrt(n_samples)``.

    Draws are evaluated ``batch_size`` at a time with ``jax.vmap`` and the batches run
    in sequence with ``jax.lax.map`` (a last, smaller batch takes the remainder), so
    memory is bounded by one batch. The whole estimate is one ``jax.jit`` program per
    ``get`` and input shapes.

    Args:
        init_fn: ``init_fn(key, input_shape) -> (output_shape, params)`` (``net.init``).
        apply_fn: ``apply_fn(params, x, **kwargs)`` (``net.apply``).
        key: a ``jax.random`` key.
        n_samples: number of independent networks, ``>= 1``.
        batch_size: networks per vmapped batch (default 1: one draw at a time). Memory
            grows with it: the Jacobian contraction holds ``batch_size`` Jacobians of
            ``outputs x parameters`` entries, the NTK-vector products ``batch_size``
            blocks of ``outputs^2``; raise it to vectorise small networks.
        trace_axes: output axes to average over.
        diagonal_axes: output axes of which only the diagonal is kept.
        implementation: NTK implementation (see :func:`empirical_ntk_fn`).

    Returns:
        ``kernel_fn(x1, x2=None, get=None, **kwargs)`` (``kwargs`` go to ``apply_fn`` and
        must be hashable); results as in :func:`empirical_kernel_fn`.

    Raises:
        ValueError: ``n_samples`` or ``batch_size`` below 1, unknown ``get``, bad axes.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> net = L.serial(L.Dense(64), L.Relu(), L.Dense(1))
        >>> mc = monte_carlo_kernel_fn(net.init, net.apply, jax.random.key(0), 8)
        >>> mc(jnp.ones((2, 3)), None, get="nngp").shape
        (2, 2)
    """
    _check_implementation(implementation, "monte_carlo_kernel_fn")
    n_samples = int(n_samples)
    if n_samples < 1:
        raise ValueError(f"monte_carlo_kernel_fn: n_samples must be >= 1, got {n_samples}")
    batch = int(batch_size)
    if batch < 1:
        raise ValueError(f"monte_carlo_kernel_fn: batch_size must be >= 1, got {batch_size}")
    batch = min(batch, n_samples)
    keys = jax.random.split(key, n_samples)
    n_full, rest = divmod(n_samples, batch)
    one = empirical_kernel_fn(apply_fn, trace_axes, diagonal_axes, implementation)

    @functools.partial(jax.jit, static_argnames=("names", "kwargs"))
    def estimate(keys, x1, x2, names, kwargs):
        kw = dict(kwargs)

        def draw(k):
            _, params = init_fn(k, x1.shape)
            return one(x1, x2, names, params, **kw)._asdict()

        def batch_sum(ks):
            return jax.tree_util.tree_map(lambda v: jnp.sum(v, axis=0), jax.vmap(draw)(ks))

        head = jnp.reshape(keys[: n_full * batch], (n_full, batch) + keys.shape[1:])
        total = jax.tree_util.tree_map(lambda v: jnp.sum(v, axis=0), jax.lax.map(batch_sum, head))
        if rest:
            extra = batch_sum(keys[n_full * batch :])
            total = jax.tree_util.tree_map(jnp.add, total, extra)
        return {g: v / n_samples for g, v in total.items()}

    def kernel_fn(x1, x2=None, get=None, **kwargs):
        names = _names(get, "monte_carlo_kernel_fn")
        x1 = jnp.asarray(x1)
        x2 = None if x2 is None else jnp.asarray(x2)
        values = estimate(keys, x1, x2, names, tuple(sorted(kwargs.items())))
        return _select(get, values)

    return kernel_fn


__all__ = [
    "IMPLEMENTATIONS",
    "empirical_kernel_fn",
    "empirical_nngp_fn",
    "empirical_ntk_fn",
    "monte_carlo_kernel_fn",
]
