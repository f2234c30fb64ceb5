"""Wide networks trained by gradient descent on any loss: the function-space ODE.

Conventions are those of :mod:`widelab_kernels.inference` (Neural Tangents' ``predict``
module, Novak et al. 2020): kernels ``(n, n)`` shared by the ``k`` output columns
(``trace_axes=(-1,)``) or ``(n, k, n, k)`` (``trace_axes=()``); ``t`` counts steps of size
``learning_rate``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.ode import odeint
from widelab_core.validate import require_float

from ._inference_utils import _concrete, _Layout, _outputs, _targets


def _check_lr(fn: str, learning_rate) -> None:
    if not isinstance(learning_rate, jax.core.Tracer):
        require_float(learning_rate, f"{fn}: learning_rate", min=0, min_open=True)


# Gradient descent on any loss ---------------------------------------------------------


def cross_entropy_loss_grad(fx: jax.Array, y: jax.Array) -> jax.Array:
    """Gradient of the mean softmax cross-entropy ``-sum_i y_i . log softmax(fx_i) / n``.

    Args:
        fx: ``(n, k)`` logits.
        y: ``(n, k)`` one-hot (or soft) targets.

    Returns:
        ``(softmax(fx) - y) / n``, the ``loss_grad`` of :func:`gradient_descent`.
    """
    return (jax.nn.softmax(fx, axis=-1) - y) / fx.shape[0]


def mse_loss_grad(fx: jax.Array, y: jax.Array) -> jax.Array:
    """Gradient of the MSE ``||fx - y||^2 / (2 y.size)`` (Neural Tangents' convention).

    Args:
        fx: ``(n, k)`` outputs.
        y: ``(n, k)`` targets.

    Returns:
        ``(fx - y) / y.size``, the ``loss_grad`` of :func:`gradient_descent`.
    """
    return (fx - y) / y.size


class GradientDescentState(NamedTuple):
    """The state of the (momentum) gradient-descent flow at some time(s).

    Attributes:
        fx_train: training-set outputs ``(n, k)`` (a leading axis per time).
        fx_test: test-set outputs, or ``None`` when not computed.
        velocity_train: ``d fx_train / dt`` in outputs per step (momentum only, else
            ``None``).
        velocity_test: ``d fx_test / dt`` (momentum and test outputs only, else
            ``None``).
    """

    fx_train: Any
    fx_test: Any = None
    velocity_train: Any = None
    velocity_test: Any = None


#: Doubling windows tried for ``t=None`` before giving up (the last ends near 2**60 steps).
STEADY_STATE_WINDOWS = 60


def _steady_state(rhs, state, rtol: float, atol: float):
    """The limit of the flow ``d state / dt = rhs(state, t)`` as ``t -> inf``.

    Integrates over the windows ``[T_i, T_{i+1}]``, ``T_0 = 0``, ``T_{i+1} = 2 T_i + 1``,
    and stops when a whole window changes the state by at most ``10 (atol + rtol |state|)``
    (for a flow converging exponentially, as on a loss with a finite minimiser, the
    change over a doubling window bounds the distance to the limit). A flow that has not
    settled after ``STEADY_STATE_WINDOWS`` windows (e.g. cross-entropy on separable
    data, whose outputs grow like ``log t``) is a ``ValueError`` outside a trace and NaN
    inside one.
    """
    leaves = jax.tree_util.tree_leaves

    def body(carry):
        i, t0, st, _ = carry
        t1 = 2.0 * t0 + 1.0
        sol = odeint(rhs, st, jnp.stack([t0, t1]), rtol=rtol, atol=atol)
        new = jax.tree_util.tree_map(lambda a: a[-1], sol)
        settled = jnp.all(
            jnp.stack(
                [
                    jnp.all(jnp.abs(b - a) <= 10.0 * (atol + rtol * jnp.abs(b)))
                    for a, b in zip(leaves(st), leaves(new))
                ]
            )
        )
        return i + 1, t1, new, settled

    dtype = leaves(state)[0].dtype
    init = (jnp.asarray(0), jnp.asarray(0.0, dtype), state, jnp.asarray(False))
    _, t_end, final, settled = jax.lax.while_loop(
        lambda c: (c[0] < STEADY_STATE_WINDOWS) & ~c[3], body, init
    )
    if isinstance(settled, jax.core.Tracer):
        return jax.tree_util.tree_map(lambda a: jnp.where(settled, a, jnp.nan), final)
    if not bool(settled):
        raise ValueError(
            f"gradient_descent: t=None (infinite time) did not converge by t={float(t_end):.3g} "
            "steps: the loss has no finite minimiser along the flow (e.g. cross-entropy on "
            "separable data); give finite times"
        )
    return final


def gradient_descent(
    loss: Callable[[jax.Array, jax.Array], jax.Array],
    k_train_train,
    y_train,
    learning_rate: float = 1.0,
    momentum: float | None = None,
    trace_axes: Sequence[int] = (-1,),
    *,
    rtol: float | None = None,
    atol: float | None = None,
    loss_grad: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
) -> Callable[..., Any]:
    r"""Outputs of a wide network trained by gradient descent on any loss (ODE solve).

    The linearised network (Lee et al. 2019, eq. 6) follows the function-space flow
    ``df(X)/dt = -lr Theta dL/df(X)``, ``df(x)/dt = -lr Theta_xX dL/df(X)`` with ``t`` in
    steps. With heavy-ball momentum ``m`` (Qian 1999's continuous limit, also Neural
    Tangents' convention): ``f'' + (1 - m) f' = -lr Theta dL/df``, ``f'(0) = 0``. The ODE
    is integrated by ``jax.experimental.ode.odeint`` (adaptive Dormand-Prince, error
    controlled by ``rtol``/``atol``); ``loss = lambda f, y: 0.5 * jnp.mean((f - y)**2)``
    reproduces :func:`gradient_descent_mse`.

    Args:
        loss: ``loss(f(X), Y) -> scalar`` (e.g. mean softmax cross-entropy); include any
            ``1 / n`` normalisation in it. May be ``None`` when ``loss_grad`` is given.
        k_train_train: NTK ``(n, n)`` (or ``(n, k, n, k)`` with ``trace_axes=()``).
        y_train: ``(n, k)`` targets.
        learning_rate: step size; ``t`` counts steps.
        momentum: heavy-ball momentum in ``[0, 1)`` or ``None``.
        trace_axes: ``(-1,)`` or ``()``.
        rtol: relative tolerance (default ``1e-5`` in float32, ``1e-9`` in float64).
        atol: absolute tolerance (same defaults).
        loss_grad: ``g(f(X), Y) -> dL/df(X)`` used instead of ``jax.grad(loss)``, e.g.
            :func:`cross_entropy_loss_grad` or :func:`mse_loss_grad`.

    Returns:
        ``predict(t, fx_train_0=0., fx_test_0=None, k_test_train=None, *,
        velocity_train_0=None, velocity_test_0=None, return_state=False)`` returning
        ``fx_train_t`` or ``(fx_train_t, fx_test_t)`` when ``k_test_train`` is given;
        ``t`` a scalar or a 1-D non-decreasing array (a leading axis of the result), or
        ``None`` for the limit ``t -> inf`` (the end of training; an error when the flow
        does not settle, see :func:`_steady_state`). With momentum the flow may start
        moving: ``velocity_train_0``/``velocity_test_0`` are ``f'(0)`` in outputs per
        step (default 0). ``return_state=True`` returns a :class:`GradientDescentState`
        with the velocities too, so a flow stopped at ``t1`` and resumed from its state
        for ``t2 - t1`` steps ends where one run to ``t2`` does.

    Raises:
        ValueError: bad shapes, momentum out of range, negative or unsorted times,
            ``t=None`` on a flow without a limit, or initial velocities without momentum.

    Example:
        >>> import jax.numpy as jnp
        >>> mse = lambda f, y: 0.5 * jnp.mean((f - y) ** 2)
        >>> predict = gradient_descent(mse, jnp.eye(2), jnp.ones((2, 1)))
        >>> round(float(predict(2.0, 0.0)[0, 0]), 4)  # 1 - exp(-2 / 2)
        0.6321
    """
    _check_lr("gradient_descent", learning_rate)
    y = _targets(y_train, "gradient_descent")
    lay = _Layout(y, trace_axes, "gradient_descent")
    k = lay.matrix(k_train_train, None, "k_train_train")
    if momentum is not None and not 0.0 <= momentum < 1.0:
        raise ValueError(f"gradient_descent: momentum must be in [0, 1), got {momentum}")
    default = 1e-9 if y.dtype == jnp.float64 else 1e-5
    rtol = default if rtol is None else rtol
    atol = default if atol is None else atol
    if loss_grad is not None:
        grad_loss = lambda f: lay.flat(loss_grad(lay.unflat(f), y))
    elif loss is not None:
        grad_loss = jax.grad(lambda f: loss(lay.unflat(f), y))
    else:
        raise ValueError("gradient_descent: give a loss or a loss_grad")

    def make_rhs(kt):
        return lambda state, _t: rhs(state, kt)

    def rhs(state, kt):
        f_tr = state[0]
        g = grad_loss(f_tr)
        d_tr = -learning_rate * (k @ g)
        d_te = None if kt is None else -learning_rate * (kt @ g)
        if momentum is None:
            return (d_tr, d_te)
        v_tr, v_te = state[2], state[3]
        dv_tr = d_tr - (1.0 - momentum) * v_tr
        dv_te = None if kt is None else d_te - (1.0 - momentum) * v_te
        return (v_tr, v_te, dv_tr, dv_te)

    def predict(
        t,
        fx_train_0=0.0,
        fx_test_0=None,
        k_test_train=None,
        *,
        velocity_train_0=None,
        velocity_test_0=None,
        return_state: bool = False,
    ):
        if fx_test_0 is not None and k_test_train is None:
            raise ValueError("gradient_descent: fx_test_0 given without k_test_train")
        if momentum is None and (velocity_train_0 is not None or velocity_test_0 is not None):
            raise ValueError(
                "gradient_descent: initial velocities were given but momentum is None "
                "(plain gradient flow has no velocity state); give momentum or drop them"
            )
        if velocity_test_0 is not None and k_test_train is None:
            raise ValueError("gradient_descent: velocity_test_0 given without k_test_train")
        ts = None if t is None else jnp.asarray(t, y.dtype)
        if ts is not None and ts.ndim > 1:
            raise ValueError(f"gradient_descent: t must be a scalar or 1-D, got shape {ts.shape}")
        v = None if ts is None else _concrete(ts)
        if v is not None and (
            np.any(~np.isfinite(v)) or np.any(v < 0) or np.any(np.diff(np.reshape(v, (-1,))) < 0)
        ):
            raise ValueError(f"gradient_descent: t must be finite, >= 0 and non-decreasing: {v}")
        f0 = 0.0 if fx_train_0 is None else fx_train_0
        f_tr = lay.flat(_outputs(f0, y.shape, y.dtype, "gradient_descent: fx_train_0"))
        kt, f_te = None, None
        if k_test_train is not None:
            kt = lay.matrix(k_test_train, 0, "k_test_train")
            m = kt.shape[0] // (1 if lay.traced else lay.k)
            ft0 = 0.0 if fx_test_0 is None else fx_test_0
            f_te = lay.flat(_outputs(ft0, (m, lay.k), y.dtype, "gradient_descent: fx_test_0"))
        state = (f_tr, f_te)
        if momentum is not None:
            what = "gradient_descent: velocity_train_0"
            v_tr = lay.flat(_outputs(_or0(velocity_train_0), y.shape, y.dtype, what))
            v_te = None
            if f_te is not None:
                what = "gradient_descent: velocity_test_0"
                v_te = lay.flat(_outputs(_or0(velocity_test_0), (m, lay.k), y.dtype, what))
            state = state + (v_tr, v_te)
        if ts is None:
            sol = _steady_state(make_rhs(kt), state, rtol, atol)
            pick = lambda a: a
        else:
            grid = jnp.concatenate([jnp.zeros((1,), y.dtype), jnp.reshape(ts, (-1,))])
            sol = odeint(make_rhs(kt), state, grid, rtol=rtol, atol=atol)
            # odeint gives NaN at the end of a zero-length interval (t = 0 or a repeated
            # time): take each time's value from its first occurrence in the grid.
            first = jnp.searchsorted(grid, grid, side="left")
            sol = jax.tree_util.tree_map(lambda a: a[first], sol)
            pick = (lambda a: a[1]) if ts.ndim == 0 else (lambda a: a[1:])
        out = [None if a is None else lay.unflat(pick(a)) for a in sol]
        if return_state:
            return GradientDescentState(*out)
        if kt is None:
            return out[0]
        return out[0], out[1]

    return predict


def _or0(v):
    return 0.0 if v is None else v


__all__ = [
    "GradientDescentState",
    "cross_entropy_loss_grad",
    "gradient_descent",
    "mse_loss_grad",
]
